//! Access tokens become signed JWTs (issue #16):
//! - `signing_keys`: the keys that sign them, shared by every instance. The public half is a
//!   JWK; the private half is sealed with AES-256-GCM under a key derived from the pepper
//!   (`pepper_key_id` names which), so the database alone cannot sign. `slot` is `current` on
//!   the one key that signs, `next` on the one pre-published to sign next, and NULL on the
//!   others; its unique index makes "exactly one current key" a rule of the database, whatever
//!   instances race to change it (NULLs do not collide on SQLite, PostgreSQL or MySQL).
//! - `sessions` no longer stores its access token (a JWT is checked by its signature, then its
//!   session by id), and records the latest authentication: `auth_time` and `auth_method`
//!   (`pwd` or `otp`, the token's `amr`). Sessions from before are taken as password sign-ins
//!   at their creation, the only way v1 could start a session other than sign-up verification.

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
                    .table(SigningKeys::Table)
                    // The JWK thumbprint (RFC 7638): the `kid` of the tokens it signs.
                    .col(
                        ColumnDef::new(SigningKeys::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SigningKeys::Algorithm)
                            .string_len(8)
                            .not_null(),
                    )
                    // `next`, `current` or `retired`.
                    .col(ColumnDef::new(SigningKeys::State).string_len(8).not_null())
                    .col(ColumnDef::new(SigningKeys::Slot).string_len(8).null())
                    .col(ColumnDef::new(SigningKeys::PublicJwk).text().not_null())
                    .col(ColumnDef::new(SigningKeys::PrivateSealed).text().not_null())
                    .col(
                        ColumnDef::new(SigningKeys::PepperKeyId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(instant(manager, SigningKeys::CreatedAt).not_null())
                    .col(instant(manager, SigningKeys::ActivatedAt).null())
                    .col(instant(manager, SigningKeys::RetiredAt).null())
                    // A retired key is published until every token it signed has expired.
                    .col(instant(manager, SigningKeys::PublishedUntil).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("signing_keys_slot_key")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::Slot)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(instant(manager, Sessions::AuthTime).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::AuthMethod).string_len(8).null())
                    .to_owned(),
            )
            .await?;
        let backfill = Query::update()
            .table(Sessions::Table)
            .value(Sessions::AuthTime, Expr::col(Sessions::CreatedAt))
            .value(Sessions::AuthMethod, "pwd")
            .to_owned();
        manager.exec_stmt(backfill).await?;
        manager
            .drop_index(
                Index::drop()
                    .name("sessions_access_hash_key")
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Sessions::AccessHash, Sessions::AccessExpiresAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    /// Puts the columns back; sessions started meanwhile get a placeholder access hash (their
    /// JWTs mean nothing to the older code, so their holders refresh or sign in again).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::AccessHash).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(instant(manager, Sessions::AccessExpiresAt).null())
                    .to_owned(),
            )
            .await?;
        // A unique placeholder per row: the session id without dashes (32 hex characters).
        let sessions = Query::select()
            .column(Sessions::Id)
            .from(Sessions::Table)
            .to_owned();
        let rows = manager
            .get_connection()
            .query_all(manager.get_database_backend().build(&sessions))
            .await?;
        for row in rows {
            let id: sea_orm_migration::sea_orm::prelude::Uuid = row.try_get("", "id")?;
            let placeholder = Query::update()
                .table(Sessions::Table)
                .value(Sessions::AccessHash, id.simple().to_string())
                .value(Sessions::AccessExpiresAt, Expr::col(Sessions::CreatedAt))
                .and_where(Expr::col(Sessions::Id).eq(id))
                .to_owned();
            manager.exec_stmt(placeholder).await?;
        }
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
        for column in [Sessions::AuthTime, Sessions::AuthMethod] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    Algorithm,
    State,
    Slot,
    PublicJwk,
    PrivateSealed,
    PepperKeyId,
    CreatedAt,
    ActivatedAt,
    RetiredAt,
    PublishedUntil,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    CreatedAt,
    AccessHash,
    AccessExpiresAt,
    AuthTime,
    AuthMethod,
}
