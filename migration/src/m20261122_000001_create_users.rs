//! Creates `users`: one row per email address, verified or not.

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
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    // 254 is the longest address SMTP can carry (RFC 5321 path limit).
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null())
                    .col(ColumnDef::new(Users::PasswordHash).string_len(255).null())
                    .col(instant(manager, Users::EmailVerifiedAt).null())
                    .col(
                        ColumnDef::new(Users::Locale)
                            .string_len(35)
                            .not_null()
                            .default("en"),
                    )
                    .col(instant(manager, Users::CreatedAt).not_null())
                    .col(instant(manager, Users::UpdatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_email_key")
                    .table(Users::Table)
                    .col(Users::Email)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    EmailVerifiedAt,
    Locale,
    CreatedAt,
    UpdatedAt,
}
