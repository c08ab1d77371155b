//! `webhook_outbox`: one row per event to deliver to `CODEWARD_WEBHOOK_URL`.

use sea_orm::entity::prelude::*;

/// Where an event is in its life: `pending` → `sending` (claimed under a lease) →
/// `delivered`, or back to `pending` for a retry, or `dead` once its attempts are spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "dead")]
    Dead,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_outbox")]
pub struct Model {
    /// Also the `webhook-id` the receiver sees (the same on every attempt, for deduplication).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user the event is about; events of one user are delivered in order of creation.
    pub user_id: Uuid,
    /// e.g. `user.created`.
    pub event_type: String,
    /// The JSON body as sent; never holds a secret.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub status: Status,
    pub attempts: i32,
    /// When the row is due: the next retry, or the end of the current claim's lease.
    pub next_attempt_at: DateTimeUtc,
    /// Set by the claim that currently holds the row; only that claim may finish it.
    pub claim_token: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
