//! S1's write transaction run whole on the writer connection's own thread (SQLite only): the
//! measurement behind the next step for SQLite writes.
//!
//! codeward (and the S1 ceiling) write through sqlx, whose SQLite connection lives on a worker
//! thread of its own: every statement of a transaction is a message to that thread and a reply,
//! two thread wake-ups, and the writer stays held across all of them. Here one thread owns a
//! rusqlite connection to the same file with the server's settings (WAL, `synchronous=NORMAL`,
//! foreign keys, busy timeout) and runs a whole transaction per message: BEGIN, the same three
//! statements as the S1 ceiling, COMMIT, then one reply. With `Grouping::Grouped` it takes every
//! transaction already waiting, runs each in a savepoint of one transaction and commits them
//! together (group commit); every request is still answered only after its attempt committed.

use std::path::Path;
use std::sync::mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use uuid::Uuid;

/// One transaction per request, or every waiting request's in one commit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Single,
    Grouped,
}

/// A wrong guess's writes, waiting for the writer's thread.
struct Job {
    user_id: Uuid,
    now: DateTime<Utc>,
    budget: i32,
    done: oneshot::Sender<Result<(), String>>,
}

/// The writer's thread; it stops when the last handle is dropped.
#[derive(Clone)]
pub struct DirectWriter {
    jobs: mpsc::Sender<Job>,
}

impl DirectWriter {
    pub fn start(path: &Path, grouping: Grouping) -> anyhow::Result<Self> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        let (jobs, waiting) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("direct-writer".into())
            .spawn(move || serve(&connection, &waiting, grouping))?;
        Ok(Self { jobs })
    }

    /// The S1 ceiling's write transaction for `user_id`, committed when this returns `Ok`.
    pub async fn wrong_guess(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        budget: i32,
    ) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            user_id,
            now,
            budget,
            done,
        };
        self.jobs
            .send(job)
            .map_err(|_| "the direct writer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the direct writer dropped the request".to_owned())?
    }
}

fn serve(connection: &Connection, waiting: &mpsc::Receiver<Job>, grouping: Grouping) {
    while let Ok(first) = waiting.recv() {
        let mut batch = vec![first];
        if grouping == Grouping::Grouped {
            batch.extend(waiting.try_iter());
        }
        let outcomes = run_batch(connection, &batch, grouping);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

/// One transaction for the whole batch (a batch of one when not grouping); each job in a
/// savepoint when grouping, so one job's failure undoes only its own writes.
fn run_batch(
    connection: &Connection,
    batch: &[Job],
    grouping: Grouping,
) -> Vec<Result<(), String>> {
    let failed = |error: rusqlite::Error| vec![Err(error.to_string()); batch.len()];
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        return failed(error);
    }
    let outcomes: Vec<Result<(), String>> = batch
        .iter()
        .map(|job| {
            if grouping == Grouping::Single {
                return writes(connection, job);
            }
            connection
                .execute_batch("SAVEPOINT job")
                .map_err(|e| e.to_string())?;
            let outcome = writes(connection, job);
            let end = if outcome.is_ok() {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            connection.execute_batch(end).map_err(|e| e.to_string())?;
            outcome
        })
        .collect();
    let ended = if grouping == Grouping::Single && outcomes[0].is_err() {
        connection.execute_batch("ROLLBACK")
    } else {
        connection.execute_batch("COMMIT")
    };
    match ended {
        Ok(()) => outcomes,
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            failed(error)
        }
    }
}

/// Timestamps as sqlx writes them for codeward on SQLite (RFC 3339 text), so comparisons with
/// the rows codeward wrote hold.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The S1 ceiling's four write statements (`ceiling::wrong_guess`), word for word.
fn writes(connection: &Connection, job: &Job) -> Result<(), String> {
    let user = job.user_id.as_bytes().as_slice();
    let (now, day_ago) = (time(job.now), time(job.now - chrono::Duration::hours(24)));
    let mut network = connection
        .prepare_cached(crate::ceiling::NETWORK_UPSERT)
        .map_err(|e| e.to_string())?;
    network
        .execute(params![
            user,
            "verify_email",
            crate::ceiling::NETWORK,
            now,
            1,
            now,
            day_ago,
            day_ago,
            now,
            now,
            day_ago,
            job.budget
        ])
        .map_err(|e| e.to_string())?;
    let mut budget = connection
        .prepare_cached(
            "UPDATE otp_budgets SET failures = CASE WHEN window_start <= ? THEN 1 ELSE failures + 1 END, \
             window_start = CASE WHEN window_start <= ? THEN ? ELSE window_start END \
             WHERE user_id = ? AND purpose = ? AND (window_start <= ? OR failures < ?)",
        )
        .map_err(|e| e.to_string())?;
    budget
        .execute(params![
            day_ago,
            day_ago,
            now,
            user,
            "verify_email",
            day_ago,
            job.budget
        ])
        .map_err(|e| e.to_string())?;
    let mut count = connection
        .prepare_cached(
            "UPDATE otp_codes SET attempts = attempts + 1 WHERE id IN (SELECT id FROM otp_codes \
             WHERE user_id = ? AND purpose = ? AND consumed_at IS NULL AND revoked_at IS NULL \
             ORDER BY created_at DESC LIMIT 1) AND consumed_at IS NULL AND revoked_at IS NULL \
             AND expires_at > ? AND attempts < max_attempts RETURNING id, key_id, code_hash",
        )
        .map_err(|e| e.to_string())?;
    let counted = count
        .query_row(params![user, "verify_email", now], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()
        .map_err(|e| e.to_string())?;
    if counted.is_none() {
        return Err("no live code".into());
    }
    let mut audit = connection
        .prepare_cached(
            "INSERT INTO audit_events (id, user_id, event, outcome, ip, user_agent, session_id, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .map_err(|e| e.to_string())?;
    let id = Uuid::new_v4();
    audit
        .query_row(
            params![
                id.as_bytes().as_slice(),
                user,
                "verification",
                "failure",
                "127.0.0.1",
                None::<String>,
                None::<Vec<u8>>,
                now
            ],
            |_| Ok(()),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}
