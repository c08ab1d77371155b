//! The WAL's checkpoints on a thread of their own, off the write turn.
//!
//! SQLite checkpoints from the commit that takes the WAL past `wal_autocheckpoint` pages
//! (1,000 by default): the frames are copied into the database file and both are synced,
//! inside that commit, while every other write of the process waits for the turn. Under a
//! guessing flood that was about 30 times a second (docs/performance.md). Here a thread of
//! the process checkpoints every `EVERY` (`PRAGMA wal_checkpoint(PASSIVE)`: it copies what no
//! reader still needs and never waits for a lock), and the writers' own threshold is raised to
//! `WRITERS_THRESHOLD` pages, so a writer checkpoints only if this thread falls that far
//! behind.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Context as _;

use super::{is_busy, open};

/// How often the thread checkpoints.
const EVERY: Duration = Duration::from_millis(100);

/// The WAL's size, in pages, past which a writer's commit checkpoints after all.
pub const WRITERS_THRESHOLD: u32 = 10_000;

/// The checkpointing thread; it ends when this is dropped.
pub struct Checkpoints {
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpoints")
    }
}

impl Checkpoints {
    /// Starts checkpointing the file at `path` (which the writer pool has created and switched
    /// to WAL) on a connection of its own.
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let conn = open(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    failing = checkpoint(&conn, failing);
                }
            })
            .context("cannot start the SQLite checkpoint thread")?;
        Ok(Self { _stop: stop })
    }
}

/// One passive checkpoint; whether it failed. Busy (another process's checkpoint, or the WAL
/// being reset) is not a failure: the next tick tries again, and the writers' threshold bounds
/// the WAL meanwhile. A failure is logged when it starts and when it ends, not ten times a
/// second (a full disk, say).
fn checkpoint(conn: &rusqlite::Connection, failing: bool) -> bool {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    match done {
        Err(error) if !is_busy(&error) => {
            if !failing {
                tracing::warn!(%error, "SQLite checkpoint failed; the writers checkpoint past their threshold meanwhile");
            }
            true
        }
        _ => {
            if failing {
                tracing::info!("SQLite checkpoints work again");
            }
            false
        }
    }
}
