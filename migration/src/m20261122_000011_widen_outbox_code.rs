//! Widens `email_outbox.code` from 16 to 128 characters: it now holds the code sealed
//! (`v1.<key id>.<base64url of nonce, ciphertext and tag>`, at most 82 characters), never the
//! digits in clear. SQLite does not enforce a declared length, so there is nothing to change.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        code_length(manager, 128).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        code_length(manager, 16).await
    }
}

async fn code_length(manager: &SchemaManager<'_>, length: u32) -> Result<(), DbErr> {
    if manager.get_database_backend() == DatabaseBackend::Sqlite {
        return Ok(());
    }
    manager
        .alter_table(
            Table::alter()
                .table(EmailOutbox::Table)
                .modify_column(ColumnDef::new(EmailOutbox::Code).string_len(length).null())
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Code,
}
