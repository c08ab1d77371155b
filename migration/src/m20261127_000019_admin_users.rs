//! For the admin API: `users.disabled_at` (NULL while the account is enabled), the keyset
//! index `users (created_at, id)` that lists users newest first at the same cost on any page,
//! `audit_events.api_key_id` (the API key behind an admin action), and the covering index of
//! address look-ups widened by `disabled_at` (`users_email_lookup_idx` in place of migration
//! 9's `users_email_id_idx`), so that telling a disabled account from an enabled one still
//! reads the index alone, as a miss does. The new index is made before the old one goes, under
//! a name of its own: SQLite refused to recreate the dropped name within one migration.

use sea_orm_migration::prelude::*;

use crate::columns::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

const KEYSET: &str = "users_created_at_id_idx";
const COVERING: &str = "users_email_lookup_idx";
const OLD_COVERING: &str = "users_email_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(instant(manager, Users::DisabledAt).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(KEYSET)
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(COVERING)
                    .table(Users::Table)
                    .col(Users::Email)
                    .col(Users::Id)
                    .col(Users::EmailVerifiedAt)
                    .col(Users::DisabledAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(OLD_COVERING)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(ColumnDef::new(AuditEvents::ApiKeyId).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::ApiKeyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(OLD_COVERING)
                    .table(Users::Table)
                    .col(Users::Email)
                    .col(Users::Id)
                    .col(Users::EmailVerifiedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(COVERING).table(Users::Table).to_owned())
            .await?;
        manager
            .drop_index(Index::drop().name(KEYSET).table(Users::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DisabledAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailVerifiedAt,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    ApiKeyId,
}
