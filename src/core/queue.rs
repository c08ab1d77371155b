//! The delivery queue both outboxes are built on (emails, webhooks): rows committed in the
//! caller's transaction, claimed by any instance's worker under a lease, finished only by the
//! claim that holds them, retried with jittered exponential backoff, and given up as `dead`.
//!
//! A queue table has at least `id`, `status`, `attempts`, `next_attempt_at`, `claim_token`,
//! `last_error` and `created_at`; the statuses `pending`, `sending` and `dead` mean the same
//! in every queue, the finished one is the queue's own (`sent`, `delivered`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// What sets one queue table apart from another.
#[derive(Clone, Copy, Debug)]
pub struct Queue {
    pub table: &'static str,
    /// The status of a row handed over for good.
    pub done_status: &'static str,
    /// The column that records when.
    pub done_at: &'static str,
    /// Columns set to NULL once a row is finished (sent or dead): what it no longer needs.
    pub scrub: &'static [&'static str],
    /// When set, rows are delivered in order of creation per value of this column: a row is
    /// not claimed while an earlier row with the same value is pending or being sent.
    pub ordered_per: Option<&'static str>,
}

/// How often and how long a queue retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Full-jitter exponential backoff: after attempt n, wait a random time between half and
    /// all of base·2^(n-1), capped at `max`, so failed rows do not retry in lockstep.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = ceiling / 2;
        half + ceiling
            .saturating_sub(half)
            .mul_f64(rand::rng().random::<f64>())
    }

    /// What a transient failure at attempt `attempts` leads to: another attempt at the
    /// returned time, or `None` once the attempts are spent.
    pub fn next_attempt(&self, attempts: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (attempts < self.max_attempts).then(|| {
            now + chrono::Duration::from_std(self.backoff(attempts))
                .unwrap_or(chrono::Duration::MAX)
        })
    }
}

/// Wakes the local worker of a queue. Call `wake` after the transaction that enqueued commits;
/// other instances find the row on their next poll.
#[derive(Clone, Default)]
pub struct Signal(Arc<Notify>);

impl Signal {
    pub fn wake(&self) {
        // Stores a permit when the worker is busy, so a wake-up is never lost.
        self.0.notify_one();
    }

    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Runs `step` (claim a batch and deliver it, returning how many rows it claimed) until `stop`
/// turns true: again at once after a batch of `eager_at` rows or more, else when `signal`
/// wakes it or `poll` has passed. A batch in flight is finished first.
pub async fn run<F, Fut>(
    name: &str,
    signal: &Signal,
    poll: Duration,
    eager_at: usize,
    mut stop: watch::Receiver<bool>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, DbErr>>,
{
    while !*stop.borrow() {
        match step().await {
            Ok(claimed) if claimed >= eager_at.max(1) => continue,
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "{name} unavailable; retrying"),
        }
        tokio::select! {
            () = signal.woken() => {}
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Atomically claims up to `limit` due rows (pending, or sending with a lapsed lease) for
/// `lease_until`, counting an attempt on each; returns the claim's token when it got any (the
/// caller reads its rows by `claim_token`). Two workers never claim the same row: PostgreSQL
/// skips rows another claim has locked, MySQL's single UPDATE locks and re-checks what it
/// changes, SQLite has one writer at a time.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    queue: &Queue,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Option<Uuid>, DbErr> {
    let token = Uuid::new_v4();
    let backend = db.get_database_backend();
    let table = queue.table;
    let set = "status = 'sending', claim_token = {token}, next_attempt_at = {lease}, \
               attempts = attempts + 1";
    let mut due =
        format!("{table}.status IN ('pending', 'sending') AND next_attempt_at <= {{now}}");
    if let Some(column) = queue.ordered_per {
        // MySQL and MariaDB refuse a subquery on the table being updated unless it is
        // materialized first (a derived table).
        let earlier_rows = match backend {
            DatabaseBackend::MySql => format!(
                "(SELECT id, {column}, created_at FROM {table} \
                 WHERE status IN ('pending', 'sending')) AS earlier"
            ),
            _ => format!("{table} AS earlier"),
        };
        let open = match backend {
            DatabaseBackend::MySql => "",
            _ => " AND earlier.status IN ('pending', 'sending')",
        };
        due.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {earlier_rows} WHERE earlier.{column} = \
             {table}.{column}{open} AND (earlier.created_at < {table}.created_at OR \
             (earlier.created_at = {table}.created_at AND earlier.id < {table}.id)))"
        ));
    }
    let order = "ORDER BY next_attempt_at LIMIT {limit}";
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "UPDATE {table} SET {set} WHERE id IN (SELECT id FROM {table} WHERE {due} \
             {order} FOR UPDATE SKIP LOCKED)"
        ),
        DatabaseBackend::Sqlite => format!(
            "UPDATE {table} SET {set} WHERE id IN (SELECT id FROM {table} WHERE {due} {order})"
        ),
        DatabaseBackend::MySql => format!("UPDATE {table} SET {set} WHERE {due} {order}"),
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
    Ok((claimed.rows_affected() > 0).then_some(token))
}

/// Replaces named placeholders with the backend's positional ones, in order of appearance.
pub fn bind(
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

/// What to write back for a delivery attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Handed over for good, at this time.
    Done(DateTime<Utc>),
    /// Failed; due again at this time.
    Retry(DateTime<Utc>, String),
    /// Given up.
    Dead(String),
}

/// Records `outcome` for the row `id` claimed with `token`. Only the claim holding the row may
/// finish it: a worker whose lease lapsed and whose row was claimed again changes nothing.
pub async fn finish<C: ConnectionTrait>(
    db: &C,
    queue: &Queue,
    id: Uuid,
    token: Uuid,
    outcome: &Outcome,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let scrub: String = queue
        .scrub
        .iter()
        .map(|column| format!(", {column} = NULL"))
        .collect();
    let (set, values): (String, Vec<(&str, sea_orm::Value)>) = match outcome {
        Outcome::Done(at) => (
            format!(
                "status = '{}', {} = {{at}}, last_error = NULL{scrub}",
                queue.done_status, queue.done_at
            ),
            vec![("{at}", (*at).into())],
        ),
        Outcome::Retry(at, error) => (
            "status = 'pending', next_attempt_at = {at}, last_error = {error}".to_owned(),
            vec![("{at}", (*at).into()), ("{error}", error.clone().into())],
        ),
        Outcome::Dead(error) => (
            format!("status = 'dead', last_error = {{error}}{scrub}"),
            vec![("{error}", error.clone().into())],
        ),
    };
    let sql = format!(
        "UPDATE {} SET {set}, claim_token = NULL WHERE id = {{id}} AND claim_token = {{token}} \
         AND status = 'sending'",
        queue.table
    );
    let mut named = values;
    named.push(("{id}", id.into()));
    named.push(("{token}", token.into()));
    let (sql, values) = bind(backend, &sql, &named);
    db.execute(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// `finish`, tried again on a deadlock or serialization failure (MySQL's claims can collide
/// with it): an outcome that is not recorded means a second delivery when the lease runs out.
/// A failure that persists is logged; the lease then runs out and the row is retried — at
/// worst a duplicate, never a loss.
pub async fn record_outcome<C: ConnectionTrait>(
    db: &C,
    queue: &Queue,
    id: Uuid,
    token: Uuid,
    outcome: &Outcome,
) {
    for attempt in 1..=RECORD_TRIES {
        match finish(db, queue, id, token, outcome).await {
            Ok(()) => return,
            Err(error) if attempt < RECORD_TRIES && crate::infra::db::is_retryable(&error) => {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(error) => {
                tracing::error!(table = queue.table, %id, %error, "cannot record a delivery outcome");
                return;
            }
        }
    }
}

const RECORD_TRIES: u32 = 5;

/// Rows by status, and the age of the oldest one not yet handed over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QueueStatus {
    pub pending: u64,
    pub sending: u64,
    pub done: u64,
    pub dead: u64,
    /// Age of the oldest row pending or being sent.
    pub oldest_unsent_age: Option<chrono::Duration>,
}

pub async fn status<C: ConnectionTrait>(
    db: &C,
    queue: &Queue,
    now: DateTime<Utc>,
) -> Result<QueueStatus, DbErr> {
    let backend = db.get_database_backend();
    let count = async |status: &str| -> Result<u64, DbErr> {
        let (sql, values) = bind(
            backend,
            &format!(
                "SELECT COUNT(*) AS n FROM {} WHERE status = {{s}}",
                queue.table
            ),
            &[("{s}", status.into())],
        );
        let row = db
            .query_one(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(row
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    };
    let oldest = db
        .query_one(Statement::from_string(
            backend,
            format!(
                "SELECT created_at FROM {} WHERE status IN ('pending', 'sending') \
                 ORDER BY created_at LIMIT 1",
                queue.table
            ),
        ))
        .await?
        .map(|row| row.try_get::<DateTime<Utc>>("", "created_at"))
        .transpose()?;
    Ok(QueueStatus {
        pending: count("pending").await?,
        sending: count("sending").await?,
        done: count(queue.done_status).await?,
        dead: count("dead").await?,
        oldest_unsent_age: oldest.map(|at| now - at),
    })
}

/// Puts every dead row matching `condition` (SQL over the queue's columns, `1 = 1` for all)
/// back in line with its attempts reset; returns how many.
pub async fn requeue_dead<C: ConnectionTrait>(
    db: &C,
    queue: &Queue,
    now: DateTime<Utc>,
    condition: &str,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let (sql, values) = bind(
        backend,
        &format!(
            "UPDATE {} SET status = 'pending', attempts = 0, next_attempt_at = {{now}}, \
             last_error = NULL WHERE status = 'dead' AND ({condition})",
            queue.table
        ),
        &[("{now}", now.into())],
    );
    Ok(db
        .execute(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .rows_affected())
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

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
            max_attempts: 10,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = policy();
        let cases = [
            (1, 1, 2),
            (2, 2, 4),
            (3, 4, 8),
            (6, 32, 64),
            (12, 300, 600),
            (40, 300, 600),
        ];
        for (attempts, low, high) in cases {
            for _ in 0..50 {
                let delay = policy.backoff(attempts);
                assert!(
                    delay >= Duration::from_secs(low) && delay <= Duration::from_secs(high),
                    "attempt {attempts}: {delay:?} outside {low}..={high}s"
                );
            }
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let policy = policy();
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| policy.backoff(5)).collect();
        assert!(delays.len() > 1, "20 equal delays: no jitter");
    }

    #[test]
    fn the_last_attempt_has_no_next_one() {
        let now = Utc::now();
        assert!(policy().next_attempt(9, now).is_some());
        assert!(policy().next_attempt(10, now).is_none());
    }
}
