//! `email_outbox`: one row per email to deliver.

use sea_orm::entity::prelude::*;

/// Where a message is in its life: `pending` → `sending` (claimed under a lease) → `sent`, or
/// back to `pending` for a retry, or `dead` (permanent failure, too many attempts, expired).
/// A `void` row is never sent: it stands in for the email of a request about an address no
/// account has, so that request costs what a real one costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "dead")]
    Dead,
    #[sea_orm(string_value = "void")]
    Void,
}

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient: String,
    /// Template name, e.g. `verify_email`.
    pub template: String,
    pub locale: String,
    /// Render context as JSON; never holds a secret.
    #[sea_orm(column_type = "Text")]
    pub context: String,
    /// The code the message carries, if any, sealed (AES-256-GCM under a key derived from the
    /// pepper; see `codeward::mail::seal`); set to NULL once the message is sent or dead.
    pub code: Option<String>,
    pub status: Status,
    pub attempts: i32,
    /// When the row is due: the next retry, or the end of the current claim's lease.
    pub next_attempt_at: DateTimeUtc,
    /// Set by the claim that currently holds the row; only that claim may finish it.
    pub claim_token: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// An unsent message is dropped as dead after this (a code email is useless once its
    /// code has expired).
    pub expires_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    // Hand-written so that a logged row never shows its code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("email_outbox::Model")
            .field("id", &self.id)
            .field("template", &self.template)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("code", &self.code.as_ref().map(|_| "<secret>"))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
