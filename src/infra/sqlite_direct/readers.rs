//! Point lookups in place: a few connections that refuse to write, each taken by one caller at
//! a time for one statement, on the caller's thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use sea_orm::{DbErr, QueryResult, Statement};

use super::{Failed, is_busy, open, query_err, rows};

/// Connections for reads in place, opened when first needed (an idle server holds none).
///
/// Only for statements that find a few rows by a key or a unique index: the caller's thread,
/// a request's, is busy while one runs. A statement's read snapshot ends with it, so none of
/// these connections holds back the WAL's checkpoints.
pub struct DirectReaders {
    path: PathBuf,
    slots: Box<[Mutex<Option<rusqlite::Connection>>]>,
}

impl std::fmt::Debug for DirectReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectReaders")
    }
}

impl DirectReaders {
    /// `count` connections to the file at `path` (which the writer pool has created and switched
    /// to WAL): as many as threads may read at once, so a lookup rarely waits for one.
    pub fn new(path: &Path, count: usize) -> Self {
        Self {
            path: path.to_owned(),
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Every row `stmt` returns, read in place; `None` when SQLite answered busy (a reader of a
    /// WAL file waits only while another connection recovers or resets the WAL, and then the
    /// caller reads elsewhere rather than block its thread in SQLite's busy handler).
    pub fn query(&self, stmt: &Statement) -> Result<Option<Vec<QueryResult>>, DbErr> {
        let mut slot = self.free_slot();
        let conn = match &mut *slot {
            Some(conn) => conn,
            empty => empty.insert(self.open().map_err(query_err)?),
        };
        match rows(conn, stmt) {
            Ok(rows) => Ok(Some(rows)),
            Err(Failed::Sqlite(error)) if is_busy(&error) => Ok(None),
            Err(failed) => Err(failed.into()),
        }
    }

    /// The first connection nobody is using; the first one at all, once it is free, if every
    /// one is in use (a statement here takes microseconds).
    fn free_slot(&self) -> MutexGuard<'_, Option<rusqlite::Connection>> {
        for slot in &self.slots {
            match slot.try_lock() {
                Ok(guard) => return guard,
                // A panic while it was held left the connection as SQLite left it: usable.
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.slots[0].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// With the server's settings, refusing writes; its busy handler is off (see `query`).
    fn open(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let conn = open(&self.path)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }
}
