//! Adds `otp_codes_live_idx` on `otp_codes (user_id, purpose, consumed_at, revoked_at)`.
//! Finding a user's live code of a purpose then reads only the live row: the used and
//! replaced codes of an account that asked for several no longer have to be read and skipped.
//! Without it, a wrong guess for an account that had a resend cost more than one for an
//! unknown address (whose decoy has a single code), which the timing tool
//! (benches/timing.rs) told apart on SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "otp_codes_live_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(OtpCodes::Table)
                    .col(OtpCodes::UserId)
                    .col(OtpCodes::Purpose)
                    .col(OtpCodes::ConsumedAt)
                    .col(OtpCodes::RevokedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(OtpCodes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OtpCodes {
    Table,
    UserId,
    Purpose,
    ConsumedAt,
    RevokedAt,
}
