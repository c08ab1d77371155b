//! The email outbox: emails are rows committed in the caller's transaction, delivered through
//! the generic queue (`core::queue`: claimed under a lease, retried, dead), and scrubbed of
//! their code once sent or dead.

use chrono::{DateTime, Utc};
use entity::email_outbox::{self, Status};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::core::mail::seal::SealedCode;
use crate::core::mail::templates::Message;
use crate::core::queue::{self, Queue};

/// An email to send.
pub struct Email {
    pub to: String,
    pub message: Message,
    /// Requested locale; rendering falls back to its language, then `en`.
    pub locale: String,
    /// The message's variables as a JSON object; never a secret (that goes in `code`).
    pub context: serde_json::Value,
    /// The code the message carries, sealed for this recipient and template.
    pub code: Option<SealedCode>,
    /// Past this the message is useless and is dropped as dead instead of sent.
    pub expires_at: DateTime<Utc>,
}

/// Wakes the local email worker (see `queue::Signal`).
pub type OutboxSignal = queue::Signal;

/// The email outbox as the generic queue sees it: a sent or dead message loses its code.
pub const QUEUE: Queue = Queue {
    table: "email_outbox",
    done_status: "sent",
    done_at: "sent_at",
    scrub: &["code"],
    ordered_per: None,
};

/// Adds `email` to the outbox inside the caller's transaction (or connection), so the change
/// that caused it and the email are committed together or not at all.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    email: Email,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    insert(conn, email, now, Status::Pending).await
}

/// Adds a `void` row in place of `email`: the same insert, without the address or the code,
/// never sent. A request about an address no account has writes it, so that request costs
/// what a real one costs; housekeeping removes it.
pub async fn enqueue_void<C: ConnectionTrait>(
    conn: &C,
    email: Email,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let void = Email {
        to: String::new(),
        code: None,
        ..email
    };
    insert(conn, void, now, Status::Void).await
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    email: Email,
    now: DateTime<Utc>,
    status: Status,
) -> Result<Uuid, DbErr> {
    let id = Uuid::new_v4();
    let row = email_outbox::ActiveModel {
        id: Set(id),
        recipient: Set(email.to),
        template: Set(email.message.name().to_owned()),
        locale: Set(email.locale),
        context: Set(email.context.to_string()),
        code: Set(email.code.map(|c| c.as_str().to_owned())),
        status: Set(status),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claim_token: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        expires_at: Set(email.expires_at),
    };
    // Not read back: no RETURNING (nor, on MySQL, a SELECT of the new row).
    email_outbox::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(id)
}

/// Claims up to `limit` due messages for `lease_until` (see `queue::claim`) and returns them.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<email_outbox::Model>, DbErr> {
    let Some(token) = queue::claim(db, &QUEUE, now, lease_until, limit).await? else {
        return Ok(Vec::new());
    };
    email_outbox::Entity::find()
        .filter(email_outbox::Column::ClaimToken.eq(token))
        .all(db)
        .await
}

pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    queue::finish(db, &QUEUE, id, token, &queue::Outcome::Done(now)).await
}

pub async fn mark_retry<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    let outcome = queue::Outcome::Retry(next_attempt_at, error.to_owned());
    queue::finish(db, &QUEUE, id, token, &outcome).await
}

/// Gives up on a message for good, scrubbing its code.
pub async fn mark_dead<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    error: &str,
) -> Result<(), DbErr> {
    let outcome = queue::Outcome::Dead(error.to_owned());
    queue::finish(db, &QUEUE, id, token, &outcome).await
}

/// Drops unsent messages past their expiry as dead (code scrubbed); returns how many.
pub async fn expire<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Dead))
        .col_expr(
            email_outbox::Column::Code,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            email_outbox::Column::ClaimToken,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            email_outbox::Column::LastError,
            Expr::value("expired before it could be delivered"),
        )
        .filter(email_outbox::Column::Status.is_in([Status::Pending, Status::Sending]))
        .filter(email_outbox::Column::ExpiresAt.lte(now))
        // A row being sent right now is finished by its worker; it expires if that worker dies.
        .filter(
            sea_orm::Condition::any()
                .add(email_outbox::Column::Status.eq(Status::Pending))
                .add(email_outbox::Column::NextAttemptAt.lte(now)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// What `codeward outbox status` prints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OutboxStatus {
    pub pending: u64,
    pub sending: u64,
    pub sent: u64,
    pub dead: u64,
    /// Age of the oldest message not yet sent (pending or sending).
    pub oldest_unsent_age: Option<chrono::Duration>,
}

pub async fn status<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<OutboxStatus, DbErr> {
    let status = queue::status(db, &QUEUE, now).await?;
    Ok(OutboxStatus {
        pending: status.pending,
        sending: status.sending,
        sent: status.done,
        dead: status.dead,
        oldest_unsent_age: status.oldest_unsent_age,
    })
}

/// What `retry_dead` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RetryDead {
    pub requeued: u64,
    /// Dead code messages: their code was scrubbed, so they cannot be resent; the user asks
    /// for a new code instead.
    pub skipped_code_messages: u64,
    /// Dead messages past their expiry.
    pub skipped_expired: u64,
}

/// Requeues dead messages that can still be useful: not expired and carrying no code.
pub async fn retry_dead<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<RetryDead, DbErr> {
    let code_templates: Vec<&str> = Message::ALL
        .into_iter()
        .filter(|m| m.carries_code())
        .map(Message::name)
        .collect();
    let dead =
        || email_outbox::Entity::find().filter(email_outbox::Column::Status.eq(Status::Dead));
    let skipped_expired = dead()
        .filter(email_outbox::Column::ExpiresAt.lte(now))
        .count(db)
        .await?;
    let skipped_code_messages = dead()
        .filter(email_outbox::Column::ExpiresAt.gt(now))
        .filter(email_outbox::Column::Template.is_in(code_templates.clone()))
        .count(db)
        .await?;
    let requeued = email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Pending))
        .col_expr(email_outbox::Column::Attempts, Expr::value(0))
        .col_expr(email_outbox::Column::NextAttemptAt, Expr::value(now))
        .col_expr(
            email_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(email_outbox::Column::Status.eq(Status::Dead))
        .filter(email_outbox::Column::ExpiresAt.gt(now))
        .filter(email_outbox::Column::Template.is_not_in(code_templates))
        .exec(db)
        .await?
        .rows_affected;
    Ok(RetryDead {
        requeued,
        skipped_code_messages,
        skipped_expired,
    })
}
