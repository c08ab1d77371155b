//! Creates `otp_codes` (one row per issued code, only its HMAC stored) and `otp_budgets` (the
//! per-user-and-purpose budget of failed attempts, which a new code does not reset).
//!
//! `user_id` has no foreign key on purpose: for an unknown address the code engine does the
//! same inserts for a random id inside a savepoint it rolls back, so that path costs what the
//! real one costs without creating a user. Users are never deleted.

use sea_orm_migration::prelude::*;

use crate::columns::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OtpCodes::Table)
                    .col(ColumnDef::new(OtpCodes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(OtpCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(OtpCodes::Purpose).string_len(32).not_null())
                    // Hex HMAC-SHA256 of purpose ‖ user id ‖ code under the pepper `key_id`.
                    .col(ColumnDef::new(OtpCodes::CodeHash).string_len(64).not_null())
                    .col(ColumnDef::new(OtpCodes::KeyId).string_len(32).not_null())
                    .col(ColumnDef::new(OtpCodes::Email).string_len(254).not_null())
                    .col(
                        ColumnDef::new(OtpCodes::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(OtpCodes::MaxAttempts).integer().not_null())
                    .col(instant(manager, OtpCodes::CreatedAt).not_null())
                    .col(instant(manager, OtpCodes::ExpiresAt).not_null())
                    .col(instant(manager, OtpCodes::ConsumedAt).null())
                    .col(instant(manager, OtpCodes::RevokedAt).null())
                    .col(ColumnDef::new(OtpCodes::Ip).string_len(45).null())
                    .col(ColumnDef::new(OtpCodes::UserAgent).string_len(512).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("otp_codes_user_purpose_idx")
                    .table(OtpCodes::Table)
                    .col(OtpCodes::UserId)
                    .col(OtpCodes::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OtpBudgets::Table)
                    .col(ColumnDef::new(OtpBudgets::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(OtpBudgets::Purpose)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(instant(manager, OtpBudgets::WindowStart).not_null())
                    .col(
                        ColumnDef::new(OtpBudgets::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(
                        Index::create()
                            .col(OtpBudgets::UserId)
                            .col(OtpBudgets::Purpose),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OtpBudgets::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OtpCodes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OtpCodes {
    Table,
    Id,
    UserId,
    Purpose,
    CodeHash,
    KeyId,
    Email,
    Attempts,
    MaxAttempts,
    CreatedAt,
    ExpiresAt,
    ConsumedAt,
    RevokedAt,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum OtpBudgets {
    Table,
    UserId,
    Purpose,
    WindowStart,
    Failures,
}
