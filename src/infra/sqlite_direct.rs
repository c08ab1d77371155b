//! SQLite write transactions run on the calling thread, statement after statement, with no
//! hand-off between threads.
//!
//! Through sqlx every statement is a message to the connection's own thread and an answer
//! back: a wrong code guess (six statements) costs a dozen thread wake-ups, and on SQLite those
//! hand-offs, not SQLite's work, bound how many guesses per second the one writer takes
//! (docs/performance.md). So the server keeps a second connection to the same file, used only
//! by a task that holds the writer pool's one connection: the writes of the process still take
//! turns on one connection's worth of lock, in order, and a transaction here runs its
//! statements right where it is, each prepared once and kept.
//!
//! Statements come as sea-orm builds them (`ConnectionTrait`) and are bound the way sqlx binds
//! them on SQLite (UUIDs as 16-byte blobs, times as RFC 3339 text), so a row reads the same
//! whichever connection wrote it. Values read back are typed by their column's declared type,
//! as sea-orm's migrations declare them (`uuid_text`, `timestamp_with_timezone_text`, …).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{ErrorCode, OpenFlags};
use sea_orm::sea_query::Value;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{Sqlite, SqlitePool};
use sea_orm::{DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult, RuntimeErr, Statement};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

/// How many statements each connection keeps prepared: every statement of the paths that run
/// here, with room to spare.
const PREPARED_STATEMENTS: usize = 64;

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
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// Opens the file, which the writer pool has created and switched to WAL, with the
    /// server's connection settings (foreign keys, `synchronous=NORMAL`). Its busy handler is
    /// off: `begin` waits for another process's lock itself.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(Self {
            conn: Mutex::new(conn),
            busy_timeout,
            turn: Arc::default(),
            waiting: AtomicUsize::new(0),
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
        let conn = self.conn();
        let mut prepared = conn.prepare_cached(&stmt.sql).map_err(exec_err)?;
        bind(&mut prepared, stmt)?;
        let mut rows = prepared.raw_query();
        while rows.next().map_err(exec_err)?.is_some() {}
        drop(rows);
        Ok(exec_result(&conn))
    }

    pub fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let conn = self.conn();
        conn.execute_batch(sql).map_err(exec_err)?;
        Ok(exec_result(&conn))
    }

    /// Every row the statement returns. It always runs to its end, so an `UPDATE … RETURNING`
    /// read for one row still updates all it matches, as it does through sqlx.
    pub fn query(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let conn = self.conn();
        let mut prepared = conn.prepare_cached(&stmt.sql).map_err(query_err)?;
        let columns: Vec<(String, Kind)> = prepared
            .columns()
            .iter()
            .map(|column| (column.name().to_owned(), Kind::declared(column.decl_type())))
            .collect();
        bind(&mut prepared, stmt)?;
        let mut rows = prepared.raw_query();
        let mut results = Vec::new();
        while let Some(row) = rows.next().map_err(query_err)? {
            let mut values = BTreeMap::new();
            for (index, (name, kind)) in columns.iter().enumerate() {
                let value = row.get_ref(index).map_err(query_err)?;
                values.insert(name.clone(), kind.read(name, value)?);
            }
            results.push(ProxyRow::new(values).into());
        }
        Ok(results)
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

/// What the statement just run on `conn` did, as sea-orm reports it.
fn exec_result(conn: &rusqlite::Connection) -> ExecResult {
    ProxyExecResult {
        last_insert_id: u64::try_from(conn.last_insert_rowid()).unwrap_or_default(),
        rows_affected: conn.changes(),
    }
    .into()
}

fn bind(prepared: &mut rusqlite::CachedStatement<'_>, stmt: &Statement) -> Result<(), DbErr> {
    let values = stmt.values.as_ref().map_or(&[][..], |values| &values.0[..]);
    if values.len() != prepared.parameter_count() {
        return Err(exec_err(format!(
            "{} values for {} parameters",
            values.len(),
            prepared.parameter_count()
        )));
    }
    for (index, value) in values.iter().enumerate() {
        prepared
            .raw_bind_parameter(index + 1, to_sql(value)?)
            .map_err(exec_err)?;
    }
    Ok(())
}

/// A value as sqlx binds it on SQLite (sea-query-binder's `SqlxValues`). The kinds the schema
/// has no column for are refused rather than guessed.
fn to_sql(value: &Value) -> Result<Sql, DbErr> {
    let integer = |value: Option<i64>| value.map_or(Sql::Null, Sql::Integer);
    Ok(match value {
        Value::Bool(value) => integer(value.map(i64::from)),
        Value::TinyInt(value) => integer(value.map(i64::from)),
        Value::SmallInt(value) => integer(value.map(i64::from)),
        Value::Int(value) => integer(value.map(i64::from)),
        Value::BigInt(value) => integer(*value),
        Value::TinyUnsigned(value) => integer(value.map(i64::from)),
        Value::SmallUnsigned(value) => integer(value.map(i64::from)),
        Value::Unsigned(value) => integer(value.map(i64::from)),
        Value::BigUnsigned(Some(value)) => {
            Sql::Integer(i64::try_from(*value).map_err(|_| exec_err("integer out of range"))?)
        }
        Value::Float(value) => value.map_or(Sql::Null, |value| Sql::Real(f64::from(value))),
        Value::Double(value) => value.map_or(Sql::Null, Sql::Real),
        Value::String(value) => value
            .as_ref()
            .map_or(Sql::Null, |value| Sql::Text(value.to_string())),
        Value::Char(value) => value.map_or(Sql::Null, |value| Sql::Text(value.to_string())),
        Value::Bytes(value) => value
            .as_ref()
            .map_or(Sql::Null, |value| Sql::Blob(value.to_vec())),
        Value::Uuid(value) => value
            .as_ref()
            .map_or(Sql::Null, |value| Sql::Blob(value.as_bytes().to_vec())),
        Value::ChronoDateTimeUtc(value) => value.as_ref().map_or(Sql::Null, |value| {
            Sql::Text(value.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        Value::BigUnsigned(None) => Sql::Null,
        other => {
            // The kind only: a value never goes into an error.
            let kind = format!("{other:?}");
            let kind = kind.split('(').next().unwrap_or_default();
            return Err(exec_err(format!("cannot bind a {kind} value here")));
        }
    })
}

/// What a column holds, from its declared type.
#[derive(Clone, Copy)]
enum Kind {
    Uuid,
    Time,
    Int,
    BigInt,
    Bool,
    Text,
    Real,
    Bytes,
    /// An expression's column (`COUNT(*)`, …): typed by its value.
    Untyped,
}

impl Kind {
    fn declared(decl_type: Option<&str>) -> Self {
        let Some(declared) = decl_type else {
            return Self::Untyped;
        };
        let declared = declared.to_ascii_lowercase();
        let name = declared.split('(').next().unwrap_or_default().trim();
        match name {
            "uuid_text" => Self::Uuid,
            "timestamp_with_timezone_text" => Self::Time,
            "integer" | "int" => Self::Int,
            "bigint" | "big_integer" => Self::BigInt,
            "boolean" | "bool" => Self::Bool,
            "text" | "varchar" | "char" | "string" => Self::Text,
            "real" | "double" | "float" => Self::Real,
            "blob" | "binary" | "varbinary" => Self::Bytes,
            _ => Self::Untyped,
        }
    }

    /// The value as sea-orm's getters expect it for the column's type (`None` of that type
    /// for NULL).
    fn read(self, column: &str, value: ValueRef<'_>) -> Result<Value, DbErr> {
        let mismatch = || {
            query_err(format!(
                "column {column}: unexpected {:?}",
                value.data_type()
            ))
        };
        fn text(bytes: &[u8]) -> Option<&str> {
            std::str::from_utf8(bytes).ok()
        }
        Ok(match (self, value) {
            (Self::Uuid, ValueRef::Null) => Value::Uuid(None),
            (Self::Uuid, ValueRef::Blob(bytes)) => Value::Uuid(Some(Box::new(
                Uuid::from_slice(bytes).map_err(|_| mismatch())?,
            ))),
            (Self::Time, ValueRef::Null) => Value::ChronoDateTimeUtc(None),
            (Self::Time, ValueRef::Text(bytes)) => Value::ChronoDateTimeUtc(Some(Box::new(
                text(bytes).and_then(parse_time).ok_or_else(mismatch)?,
            ))),
            (Self::Int, ValueRef::Null) => Value::Int(None),
            (Self::Int, ValueRef::Integer(value)) => match i32::try_from(value) {
                Ok(value) => Value::Int(Some(value)),
                Err(_) => Value::BigInt(Some(value)),
            },
            (Self::BigInt, ValueRef::Null) => Value::BigInt(None),
            (Self::BigInt | Self::Untyped, ValueRef::Integer(value)) => Value::BigInt(Some(value)),
            (Self::Bool, ValueRef::Null) => Value::Bool(None),
            (Self::Bool, ValueRef::Integer(value)) => Value::Bool(Some(value != 0)),
            (Self::Text | Self::Untyped, ValueRef::Null) => Value::String(None),
            (Self::Text | Self::Untyped, ValueRef::Text(bytes)) => {
                Value::String(Some(Box::new(text(bytes).ok_or_else(mismatch)?.to_owned())))
            }
            (Self::Real, ValueRef::Null) => Value::Double(None),
            (Self::Real | Self::Untyped, ValueRef::Real(value)) => Value::Double(Some(value)),
            (Self::Bytes, ValueRef::Null) => Value::Bytes(None),
            (Self::Bytes | Self::Untyped, ValueRef::Blob(bytes)) => {
                Value::Bytes(Some(Box::new(bytes.to_vec())))
            }
            _ => return Err(mismatch()),
        })
    }
}

/// A time as sqlx writes it (RFC 3339), or as SQLite's own functions do (UTC).
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%F %T%.f")
                .ok()
                .map(|time| time.and_utc())
        })
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _) if failure.code == ErrorCode::DatabaseBusy)
}

fn exec_err(error: impl std::fmt::Display) -> DbErr {
    DbErr::Exec(RuntimeErr::Internal(format!("SQLite: {error}")))
}

fn query_err(error: impl std::fmt::Display) -> DbErr {
    DbErr::Query(RuntimeErr::Internal(format!("SQLite: {error}")))
}
