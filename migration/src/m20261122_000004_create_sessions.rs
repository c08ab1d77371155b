//! Creates `sessions` (one per signed-in device) and `refresh_tokens` (every refresh token a
//! session was given, so a replayed one is recognised). Tokens are stored as SHA-256 only.

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
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                    .col(ColumnDef::new(Sessions::DeviceName).string_len(128).null())
                    .col(ColumnDef::new(Sessions::Ip).string_len(45).null())
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(512).null())
                    .col(
                        ColumnDef::new(Sessions::AccessHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(instant(manager, Sessions::AccessExpiresAt).not_null())
                    .col(instant(manager, Sessions::RefreshExpiresAt).not_null())
                    .col(instant(manager, Sessions::ExpiresAt).not_null())
                    .col(instant(manager, Sessions::CreatedAt).not_null())
                    .col(instant(manager, Sessions::LastUsedAt).not_null())
                    .col(instant(manager, Sessions::RevokedAt).null())
                    .col(
                        ColumnDef::new(Sessions::RevokedReason)
                            .string_len(32)
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("sessions_user_fk")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_access_hash_key")
                    .table(Sessions::Table)
                    .col(Sessions::AccessHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_idx")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                    .col(instant(manager, RefreshTokens::CreatedAt).not_null())
                    .col(instant(manager, RefreshTokens::UsedAt).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("refresh_tokens_session_fk")
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_session_idx")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    DeviceName,
    Ip,
    UserAgent,
    AccessHash,
    AccessExpiresAt,
    RefreshExpiresAt,
    ExpiresAt,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    CreatedAt,
    UsedAt,
}
