//! SQLite statements run on the calling thread, with no hand-off between threads.
//!
//! Through sqlx every statement is a message to the connection's own thread and an answer
//! back: a wrong code guess (six statements) costs a dozen thread wake-ups, and on SQLite those
//! hand-offs, not SQLite's work, bound how many guesses per second the one writer takes
//! (docs/performance.md). So the server keeps connections of its own to the same file:
//!
//! - `DirectWriter` (`writer`): one, for write transactions, used only by a task that holds
//!   the writer pool's one connection: the writes of the process still take turns on one
//!   connection's worth of lock, in order, and a transaction here runs its statements right
//!   where it is;
//! - `DirectReaders` (`readers`): a few that refuse to write, for the point lookups of the
//!   busiest operations (an account by its address).
//!
//! Statements come as sea-orm builds them (`ConnectionTrait`), each prepared once and kept, and
//! are bound the way sqlx binds them on SQLite (UUIDs as 16-byte blobs, times as RFC 3339
//! text), so a row reads the same whichever connection wrote it. Values read back are typed by
//! their column's declared type, as sea-orm's migrations declare them (`uuid_text`,
//! `timestamp_with_timezone_text`, …).

mod checkpoints;
mod readers;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{ErrorCode, OpenFlags};
use sea_orm::sea_query::Value;
use sea_orm::{DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult, RuntimeErr, Statement};
use uuid::Uuid;

pub use checkpoints::WRITERS_THRESHOLD;
pub use readers::DirectReaders;
pub use writer::{DirectTxn, DirectWriter};

/// How many statements each connection keeps prepared: every statement of the paths that run
/// here, with room to spare.
const PREPARED_STATEMENTS: usize = 64;

/// A connection of ours to the file at `path` (which the writer pool has created and switched
/// to WAL), with the settings every one of them shares: foreign keys on, statements kept
/// prepared, and SQLite's busy handler off, so nobody waits for a lock on a request's thread.
fn open(path: &Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

/// Runs a statement that returns no rows, to its end.
fn execute(conn: &rusqlite::Connection, stmt: &Statement) -> Result<ExecResult, DbErr> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(exec_err)?;
    bind(&mut prepared, stmt)?;
    let mut rows = prepared.raw_query();
    while rows.next().map_err(exec_err)?.is_some() {}
    drop(rows);
    Ok(exec_result(conn))
}

/// Every row the statement returns (see `rows`).
fn query(conn: &rusqlite::Connection, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
    rows(conn, stmt).map_err(DbErr::from)
}

/// Why a statement run in place failed.
enum Failed {
    /// SQLite's own error: busy among others.
    Sqlite(rusqlite::Error),
    /// A value to bind or read that does not fit.
    Value(DbErr),
}

impl From<Failed> for DbErr {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Sqlite(error) => query_err(error),
            Failed::Value(error) => error,
        }
    }
}

/// Every row the statement returns. It always runs to its end, so an `UPDATE … RETURNING`
/// read for one row still updates all it matches, as it does through sqlx; and a read's
/// snapshot ends with it (the prepared statement is reset when it goes back to the cache).
fn rows(conn: &rusqlite::Connection, stmt: &Statement) -> Result<Vec<QueryResult>, Failed> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(Failed::Sqlite)?;
    let columns: Vec<(String, Kind)> = prepared
        .columns()
        .iter()
        .map(|column| (column.name().to_owned(), Kind::declared(column.decl_type())))
        .collect();
    bind(&mut prepared, stmt).map_err(Failed::Value)?;
    let mut rows = prepared.raw_query();
    let mut results = Vec::new();
    while let Some(row) = rows.next().map_err(Failed::Sqlite)? {
        let mut values = BTreeMap::new();
        for (index, (name, kind)) in columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(Failed::Sqlite)?;
            values.insert(name.clone(), kind.read(name, value).map_err(Failed::Value)?);
        }
        results.push(ProxyRow::new(values).into());
    }
    Ok(results)
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
