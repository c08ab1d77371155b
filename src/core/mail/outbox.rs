//! The outbox: emails are rows committed in the caller's transaction, claimed by a worker under
//! a lease, and scrubbed of their code once sent or dead.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::email_outbox::{self, Status};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Set, Statement,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::core::mail::seal::SealedCode;
use crate::core::mail::templates::Message;

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

/// Wakes the local delivery worker. Call `wake` after the transaction that enqueued commits;
/// other instances find the row on their next poll.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        // Stores a permit when the worker is busy, so a wake-up is never lost.
        self.0.notify_one();
    }

    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

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
    email_outbox::ActiveModel {
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
    }
    .insert(conn)
    .await?;
    Ok(id)
}

/// Atomically claims up to `limit` due rows (pending, or sending with a lapsed lease) for
/// `lease_until`, counting an attempt on each, and returns them. Two workers never claim the
/// same row: PostgreSQL skips rows another claim has locked, MySQL's single UPDATE locks
/// and re-checks what it changes, SQLite has one writer at a time.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<email_outbox::Model>, DbErr> {
    let token = Uuid::new_v4();
    let backend = db.get_database_backend();
    let set = "status = 'sending', claim_token = {token}, next_attempt_at = {lease}, \
               attempts = attempts + 1";
    let due = "status IN ('pending', 'sending') AND next_attempt_at <= {now}";
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "UPDATE email_outbox SET {set} WHERE id IN (SELECT id FROM email_outbox WHERE {due} \
             ORDER BY next_attempt_at LIMIT {{limit}} FOR UPDATE SKIP LOCKED)"
        ),
        DatabaseBackend::Sqlite => format!(
            "UPDATE email_outbox SET {set} WHERE id IN (SELECT id FROM email_outbox WHERE {due} \
             ORDER BY next_attempt_at LIMIT {{limit}})"
        ),
        DatabaseBackend::MySql => {
            format!(
                "UPDATE email_outbox SET {set} WHERE {due} ORDER BY next_attempt_at LIMIT {{limit}}"
            )
        }
    };
    let (sql, values) = bind(
        backend,
        &sql,
        &[
            ("{token}", token.into()),
            ("{lease}", lease_until.into()),
            ("{now}", now.into()),
            ("{limit}", i64::from(limit).into()),
        ],
    );
    let claimed = db
        .execute(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    if claimed.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    email_outbox::Entity::find()
        .filter(email_outbox::Column::ClaimToken.eq(token))
        .all(db)
        .await
}

/// Replaces named placeholders with the backend's positional ones, in order of appearance.
fn bind(
    backend: DatabaseBackend,
    sql: &str,
    named: &[(&str, sea_orm::Value)],
) -> (String, Vec<sea_orm::Value>) {
    let mut out = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut rest = sql;
    while let Some((position, (name, value))) = named
        .iter()
        .filter_map(|entry| rest.find(entry.0).map(|p| (p, entry)))
        .min_by_key(|(p, _)| *p)
    {
        out.push_str(&rest[..position]);
        values.push(value.clone());
        match backend {
            DatabaseBackend::Postgres => out.push_str(&format!("${}", values.len())),
            _ => out.push('?'),
        }
        rest = &rest[position + name.len()..];
    }
    out.push_str(rest);
    (out, values)
}

/// Only the claim holding the row may finish it: a worker whose lease lapsed and whose row was
/// claimed again changes nothing.
fn held_by(id: Uuid, token: Uuid) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(email_outbox::Column::Id.eq(id))
        .add(email_outbox::Column::ClaimToken.eq(token))
        .add(email_outbox::Column::Status.eq(Status::Sending))
}

pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Sent))
        .col_expr(email_outbox::Column::SentAt, Expr::value(now))
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
            Expr::value(Option::<String>::None),
        )
        .filter(held_by(id, token))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn mark_retry<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Pending))
        .col_expr(
            email_outbox::Column::NextAttemptAt,
            Expr::value(next_attempt_at),
        )
        .col_expr(
            email_outbox::Column::ClaimToken,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(email_outbox::Column::LastError, Expr::value(error))
        .filter(held_by(id, token))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives up on a message for good, scrubbing its code.
pub async fn mark_dead<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    error: &str,
) -> Result<(), DbErr> {
    email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Dead))
        .col_expr(
            email_outbox::Column::Code,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            email_outbox::Column::ClaimToken,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(email_outbox::Column::LastError, Expr::value(error))
        .filter(held_by(id, token))
        .exec(db)
        .await?;
    Ok(())
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
    let count = |status: Status| {
        email_outbox::Entity::find()
            .filter(email_outbox::Column::Status.eq(status))
            .count(db)
    };
    let oldest: Option<DateTime<Utc>> = email_outbox::Entity::find()
        .select_only()
        .expr(Func::min(Expr::col(email_outbox::Column::CreatedAt)))
        .filter(email_outbox::Column::Status.is_in([Status::Pending, Status::Sending]))
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(db)
        .await?
        .flatten();
    Ok(OutboxStatus {
        pending: count(Status::Pending).await?,
        sending: count(Status::Sending).await?,
        sent: count(Status::Sent).await?,
        dead: count(Status::Dead).await?,
        oldest_unsent_age: oldest.map(|at| now - at),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_placeholders_become_positional_in_order_of_appearance() {
        let named = [("{a}", 1i64.into()), ("{b}", 2i64.into())];

        let (pg, pg_values) = bind(
            DatabaseBackend::Postgres,
            "x={b} AND y={a} AND z={b}",
            &named,
        );
        let (my, _) = bind(DatabaseBackend::MySql, "x={b} AND y={a}", &named);

        assert_eq!(pg, "x=$1 AND y=$2 AND z=$3");
        assert_eq!(pg_values, vec![2i64.into(), 1i64.into(), 2i64.into()]);
        assert_eq!(my, "x=? AND y=?");
    }
}
