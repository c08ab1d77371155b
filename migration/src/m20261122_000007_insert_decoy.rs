//! Inserts the decoys: user ids no address leads to (there are no such users), each with one
//! code and one budget row per purpose. Work done for unknown addresses runs against these rows, so every path of a public
//! operation runs the same statements. The code never expires (so a guess against it counts
//! like a guess against a live code), but its stored hash is all zeros, which no HMAC yields,
//! and the engine never reports a match for the decoy.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{ChronoDateTimeUtc, Uuid};

/// Frozen with this migration: the code engine keeps its own copy of these ids
/// (`codeward::core::codes`), and a test checks that the two agree.
mod decoy {
    /// How many decoys there are.
    pub const COUNT: u128 = 64;
    /// User ids no `users` row has, so no address leads to them: `FIRST_USER_ID + i`.
    pub const FIRST_USER_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0000;
    /// Code ids: `FIRST_CODE_ID + 2 i` (verify_email) and `+ 2 i + 1` (reset_password).
    pub const FIRST_CODE_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0001_0000_0000;
    pub const PURPOSES: [&str; 2] = ["verify_email", "reset_password"];
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let epoch = ChronoDateTimeUtc::UNIX_EPOCH;
        // Far ahead, but before 2038-01-19: sqlx sends UTC instants to MySQL/MariaDB as
        // TIMESTAMP values, which end there (the column itself is DATETIME(6)).
        let never = ChronoDateTimeUtc::from_timestamp(2_145_830_400, 0).unwrap_or(epoch);
        let mut rows: Vec<(Uuid, Uuid, &str)> = Vec::new();
        for i in 0..decoy::COUNT {
            for (p, purpose) in (0u128..).zip(decoy::PURPOSES) {
                let user = Uuid::from_u128(decoy::FIRST_USER_ID + i);
                rows.push((
                    user,
                    Uuid::from_u128(decoy::FIRST_CODE_ID + 2 * i + p),
                    purpose,
                ));
            }
        }
        // One statement per table, so every new database pays two round trips for this.
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
        for (user, code_id, purpose) in rows {
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
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
