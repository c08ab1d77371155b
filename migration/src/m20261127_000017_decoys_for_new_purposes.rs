//! Gives the decoys (migration 7) a code and a failure ceiling for the purposes the lifecycle
//! issue adds: `login`, `change_email` and `reauthenticate`. A wrong guess for an unknown
//! address then runs on a decoy's rows for these purposes too, as for the first two.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{ChronoDateTimeUtc, Uuid};

/// Frozen with this migration (the decoy user ids are migration 7's).
mod decoy {
    pub const COUNT: u128 = 64;
    pub const FIRST_USER_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0000;
    /// Code ids: `FIRST_CODE_ID + 3 i + p`, apart from migration 7's.
    pub const FIRST_CODE_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0002_0000_0000;
    pub const PURPOSES: [&str; 3] = ["login", "change_email", "reauthenticate"];
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let epoch = ChronoDateTimeUtc::UNIX_EPOCH;
        // Far ahead, but before 2038-01-19 (see migration 7).
        let never = ChronoDateTimeUtc::from_timestamp(2_145_830_400, 0).unwrap_or(epoch);
        let mut codes = Query::insert()
            .into_table(Alias::new("otp_codes"))
            .columns(
                [
                    "id",
                    "user_id",
                    "purpose",
                    "code_hash",
                    "key_id",
                    "email",
                    "attempts",
                    "max_attempts",
                    "created_at",
                    "expires_at",
                ]
                .map(Alias::new),
            )
            .to_owned();
        let mut budgets = Query::insert()
            .into_table(Alias::new("otp_budgets"))
            .columns(["user_id", "purpose", "window_start", "failures"].map(Alias::new))
            .to_owned();
        for i in 0..decoy::COUNT {
            let user = Uuid::from_u128(decoy::FIRST_USER_ID + i);
            for (p, purpose) in (0u128..).zip(decoy::PURPOSES) {
                let code_id = Uuid::from_u128(decoy::FIRST_CODE_ID + 3 * i + p);
                codes.values_panic([
                    code_id.into(),
                    user.into(),
                    purpose.into(),
                    "0".repeat(64).into(),
                    "decoy".into(),
                    "".into(),
                    0.into(),
                    i32::MAX.into(),
                    epoch.into(),
                    never.into(),
                ]);
                budgets.values_panic([user.into(), purpose.into(), epoch.into(), 0.into()]);
            }
        }
        manager.exec_stmt(codes).await?;
        manager.exec_stmt(budgets).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let users: Vec<Uuid> = (0..decoy::COUNT)
            .map(|i| Uuid::from_u128(decoy::FIRST_USER_ID + i))
            .collect();
        for table in ["otp_budgets", "otp_codes"] {
            manager
                .exec_stmt(
                    Query::delete()
                        .from_table(Alias::new(table))
                        .and_where(Expr::col(Alias::new("user_id")).is_in(users.clone()))
                        .and_where(Expr::col(Alias::new("purpose")).is_in(decoy::PURPOSES))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
