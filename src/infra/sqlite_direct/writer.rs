//! Write transactions in place: the second connection, used only by the task that holds the
//! writer pool's one connection, so the process's writes still take turns on one lock.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{Sqlite, SqlitePool};
use sea_orm::{DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use tokio::sync::OwnedMutexGuard;

use super::checkpoints::{Checkpoints, WRITERS_THRESHOLD};
use super::{exec_err, exec_result, execute, is_busy, open, query};

/// The pauses between tries to take SQLite's write lock while another process holds it, so the
/// wait is asynchronous instead of SQLite's busy handler blocking the thread (the same steps as
/// SQLite's own handler); given up after `busy_timeout` in all.
const BUSY_PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// The second connection to a SQLite file, for write transactions run in place.
pub struct DirectWriter {
    /// Only used by the task that holds the writer pool's connection; the mutex is never
    /// waited for, it only lets the transaction be shared between threads (`Sync`).
    conn: Mutex<rusqlite::Connection>,
    busy_timeout: Duration,
    turn: Arc<tokio::sync::Mutex<Turn>>,
    /// Transactions waiting for `turn`.
    waiting: AtomicUsize,
    /// The WAL's checkpoints, off the turn; they end with the writer.
    _checkpoints: Checkpoints,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// Opens the file, which the writer pool has created and switched to WAL, with the
    /// server's connection settings (foreign keys, `synchronous=NORMAL`), and starts the
    /// WAL's checkpoints beside it (`checkpoints`), which its commits leave to them. Its busy
    /// handler is off: `begin` waits for another process's lock itself.
    pub fn open(path: &Path, busy_timeout: Duration) -> anyhow::Result<Self> {
        let conn = open(path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITERS_THRESHOLD)?;
        Ok(Self {
            conn: Mutex::new(conn),
            busy_timeout,
            turn: Arc::default(),
            waiting: AtomicUsize::new(0),
            _checkpoints: Checkpoints::start(path)?,
        })
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`) once this task holds `pool`'s
    /// connection, the turn every write of the process takes.
    pub async fn begin(self: &Arc<Self>, pool: &SqlitePool) -> Result<DirectTxn, DbErr> {
        let mut waiting = Waiting::count(self);
        let turn = Arc::clone(&self.turn).lock_owned().await;
        waiting.turn_taken = true;
        drop(waiting);
        let mut txn = DirectTxn {
            writer: Arc::clone(self),
            turn,
            open: false,
        };
        if txn.turn.writer.is_none() {
            let writer = pool
                .acquire()
                .await
                .map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(error)))?;
            txn.turn.writer = Some(writer);
        }
        // A transaction left open by a failed ROLLBACK (see `Drop`) is ended first.
        let left_open = !txn.conn().is_autocommit();
        if left_open {
            txn.conn().execute_batch("ROLLBACK").map_err(exec_err)?;
        }
        let mut waited = Duration::ZERO;
        let mut pauses = BUSY_PAUSES_MS.iter().copied().map(Duration::from_millis);
        loop {
            let begun = txn.conn().execute_batch("BEGIN IMMEDIATE");
            match begun {
                Ok(()) => {
                    txn.open = true;
                    return Ok(txn);
                }
                Err(error) if is_busy(&error) && waited < self.busy_timeout => {
                    let pause = pauses.next().unwrap_or(Duration::from_millis(100));
                    tokio::time::sleep(pause).await;
                    waited += pause;
                }
                Err(error) => return Err(exec_err(error)),
            }
        }
    }
}

/// The turn among the transactions run in place, and the writer pool's connection while they
/// follow one another: handing it back to the pool and taking it again costs each transaction
/// two task wake-ups (sqlx returns a connection from a task it spawns), so it stays with the
/// turn while another transaction here is waiting, up to `MAX_STREAK` transactions in a row;
/// then it goes back to the pool, where the process's other writes take their turn first.
#[derive(Default)]
struct Turn {
    writer: Option<PoolConnection<Sqlite>>,
    streak: u32,
}

const MAX_STREAK: u32 = 32;

/// Counts a transaction waiting for the turn, until dropped. A wait given up (its request
/// cancelled) may have been the one the last transaction kept the writer pool's connection
/// for: if nobody holds the turn and nobody else waits, the connection goes back to the pool
/// now, or the process's other writes would wait for the next transaction in place.
struct Waiting<'a> {
    writer: &'a DirectWriter,
    turn_taken: bool,
}

impl<'a> Waiting<'a> {
    fn count(writer: &'a DirectWriter) -> Self {
        writer.waiting.fetch_add(1, Ordering::SeqCst);
        Self {
            writer,
            turn_taken: false,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.writer.waiting.fetch_sub(1, Ordering::SeqCst);
        if !self.turn_taken
            && let Ok(mut turn) = self.writer.turn.try_lock()
            && self.writer.waiting.load(Ordering::SeqCst) == 0
        {
            turn.writer = None;
            turn.streak = 0;
        }
    }
}

/// A write transaction on the `DirectWriter`. Dropped without `commit`, it rolls back at once.
pub struct DirectTxn {
    writer: Arc<DirectWriter>,
    /// Holds the writer pool's connection (never used: it is the turn of the process's writes).
    turn: OwnedMutexGuard<Turn>,
    open: bool,
}

impl std::fmt::Debug for DirectTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectTxn")
            .field("open", &self.open)
            .finish()
    }
}

impl DirectTxn {
    fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while it was held left the connection as SQLite left it: still usable.
        self.writer
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn commit(mut self) -> Result<(), DbErr> {
        let committed = self.conn().execute_batch("COMMIT");
        if committed.is_ok() {
            self.open = false;
        }
        committed.map_err(exec_err)
    }

    pub fn execute(&self, stmt: &Statement) -> Result<ExecResult, DbErr> {
        execute(&self.conn(), stmt)
    }

    pub fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let conn = self.conn();
        conn.execute_batch(sql).map_err(exec_err)?;
        Ok(exec_result(&conn))
    }

    /// Every row the statement returns (see `sqlite_direct::query`).
    pub fn query(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        query(&self.conn(), stmt)
    }
}

impl Drop for DirectTxn {
    fn drop(&mut self) {
        if self.open
            && let Err(error) = self.conn().execute_batch("ROLLBACK")
        {
            // `begin` ends it before the next transaction.
            tracing::error!(%error, "SQLite write transaction: rollback failed");
        }
        let turn = &mut *self.turn;
        turn.streak += 1;
        if self.writer.waiting.load(Ordering::SeqCst) == 0 || turn.streak >= MAX_STREAK {
            turn.writer = None;
            turn.streak = 0;
        }
    }
}
