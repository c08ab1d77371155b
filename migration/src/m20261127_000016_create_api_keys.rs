//! Creates `api_keys`: the keys the app's backend and operators' tools authenticate with
//! (`cwk_…`). Only each key's SHA-256 is stored, with a name, its scopes and when it was made,
//! last used and revoked. Rows are never purged: a revoked key stays listed, so an operator can
//! still tell what a key in an old log line was.

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
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(100).not_null())
                    .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null())
                    // Space-separated scope names, e.g. `introspect admin`.
                    .col(ColumnDef::new(ApiKeys::Scopes).string_len(255).not_null())
                    .col(instant(manager, ApiKeys::CreatedAt).not_null())
                    .col(instant(manager, ApiKeys::LastUsedAt).null())
                    .col(instant(manager, ApiKeys::RevokedAt).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_key_hash_key")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::KeyHash)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    Scopes,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}
