//! Creates `webhook_outbox`: events committed with the change they report, delivered to
//! `CODEWARD_WEBHOOK_URL` by the worker in order of creation per user.

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
                    .table(WebhookOutbox::Table)
                    .col(
                        ColumnDef::new(WebhookOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookOutbox::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookOutbox::EventType)
                            .string_len(64)
                            .not_null(),
                    )
                    // The body as it is sent, every attempt alike: ids and addresses, never a
                    // secret.
                    .col(ColumnDef::new(WebhookOutbox::Payload).text().not_null())
                    .col(
                        ColumnDef::new(WebhookOutbox::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(instant(manager, WebhookOutbox::NextAttemptAt).not_null())
                    .col(ColumnDef::new(WebhookOutbox::ClaimToken).uuid().null())
                    .col(ColumnDef::new(WebhookOutbox::LastError).text().null())
                    .col(instant(manager, WebhookOutbox::CreatedAt).not_null())
                    .col(instant(manager, WebhookOutbox::DeliveredAt).null())
                    .to_owned(),
            )
            .await?;
        // The worker's claim query: due rows of a status, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("webhook_outbox_due_idx")
                    .table(WebhookOutbox::Table)
                    .col(WebhookOutbox::Status)
                    .col(WebhookOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_outbox_claim_token_idx")
                    .table(WebhookOutbox::Table)
                    .col(WebhookOutbox::ClaimToken)
                    .to_owned(),
            )
            .await?;
        // The per-user order: is an earlier event of this user still open?
        manager
            .create_index(
                Index::create()
                    .name("webhook_outbox_user_order_idx")
                    .table(WebhookOutbox::Table)
                    .col(WebhookOutbox::UserId)
                    .col(WebhookOutbox::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookOutbox {
    Table,
    Id,
    UserId,
    EventType,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimToken,
    LastError,
    CreatedAt,
    DeliveredAt,
}
