//! Creates `email_outbox`: emails committed with the change that caused them, delivered by the
//! worker, scrubbed of their code once sent or dead.

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
                    .table(EmailOutbox::Table)
                    .col(
                        ColumnDef::new(EmailOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Recipient)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Template)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Locale)
                            .string_len(35)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Context).text().not_null())
                    // The one secret a message may carry (a code); NULL once sent or dead.
                    .col(ColumnDef::new(EmailOutbox::Code).string_len(16).null())
                    .col(
                        ColumnDef::new(EmailOutbox::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(instant(manager, EmailOutbox::NextAttemptAt).not_null())
                    .col(ColumnDef::new(EmailOutbox::ClaimToken).uuid().null())
                    .col(ColumnDef::new(EmailOutbox::LastError).text().null())
                    .col(instant(manager, EmailOutbox::CreatedAt).not_null())
                    .col(instant(manager, EmailOutbox::SentAt).null())
                    .col(instant(manager, EmailOutbox::ExpiresAt).not_null())
                    .to_owned(),
            )
            .await?;
        // The worker's claim query: due rows of a status, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("email_outbox_due_idx")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::Status)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_outbox_claim_token_idx")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::ClaimToken)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    Recipient,
    Template,
    Locale,
    Context,
    Code,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimToken,
    LastError,
    CreatedAt,
    SentAt,
    ExpiresAt,
}
