//! Inserts the decoy: a user id no address leads to (there is no such user), with one code
//! and one budget row per purpose. Work done for unknown addresses runs against these rows, so every path of a public
//! operation runs the same statements. The code never expires (so a guess against it counts
//! like a guess against a live code), but its stored hash is all zeros, which no HMAC yields,
//! and the engine never reports a match for the decoy.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{ChronoDateTimeUtc, Uuid};

use crate::decoy;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let epoch = ChronoDateTimeUtc::UNIX_EPOCH;
        // Far ahead, but before 2038-01-19: sqlx sends UTC instants to MySQL/MariaDB as
        // TIMESTAMP values, which end there (the column itself is DATETIME(6)).
        let never = ChronoDateTimeUtc::from_timestamp(2_145_830_400, 0).unwrap_or(epoch);
        let user = Uuid::from_u128(decoy::USER_ID);
        for (purpose, code_id) in decoy::CODES {
            manager
                .exec_stmt(
                    Query::insert()
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
                        .values_panic([
                            Uuid::from_u128(code_id).into(),
                            user.into(),
                            purpose.into(),
                            "0".repeat(64).into(),
                            "decoy".into(),
                            "".into(),
                            0.into(),
                            i32::MAX.into(),
                            epoch.into(),
                            never.into(),
                        ])
                        .to_owned(),
                )
                .await?;
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(Alias::new("otp_budgets"))
                        .columns(["user_id", "purpose", "window_start", "failures"].map(Alias::new))
                        .values_panic([user.into(), purpose.into(), epoch.into(), 0.into()])
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let user = Uuid::from_u128(decoy::USER_ID);
        for table in ["otp_budgets", "otp_codes"] {
            manager
                .exec_stmt(
                    Query::delete()
                        .from_table(Alias::new(table))
                        .and_where(Expr::col(Alias::new("user_id")).eq(user))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
