//! The point lookups read in place on a SQLite file (`infra::sqlite_direct::DirectReaders`,
//! through `infra::lookups::Lookups`): they read what sqlx wrote, typed alike, see every
//! commit at once, hold no read open afterwards (the WAL's checkpoints go through), and a
//! busy SQLite sends them to the read pool instead of blocking the thread. SQLite only.

use codeward::core::accounts::find_account;
use codeward::domain::EmailAddress;
use codeward::infra::lookups::Lookups;
use codeward::infra::sqlite_direct::DirectReaders;
use entity::otp_codes;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseBackend, EntityTrait, IntoActiveModel, Statement,
};
use uuid::Uuid;

use crate::write_in_place::{code_row, sqlite_file};

#[tokio::test]
async fn a_lookup_in_place_reads_what_sqlx_wrote_and_sees_each_commit_at_once() {
    let (connections, _folder, _) = sqlite_file().await;
    let lookups = Lookups::new(&connections);
    assert!(lookups.in_place(), "a SQLite file reads lookups in place");
    let row = row_written(&connections).await;

    // Every column typed as sqlx types it: UUIDs, times, NULLs, integers, text.
    let found = otp_codes::Entity::find_by_id(row.id).one(&lookups).await;
    assert_eq!(found.unwrap().as_ref(), Some(&row));
    let all = otp_codes::Entity::find().all(&lookups).await.unwrap();
    let by_sqlx = otp_codes::Entity::find().all(&connections.reads).await;
    assert_eq!(all, by_sqlx.unwrap());

    // A commit through the writer shows in the very next lookup: no read is left open on an
    // older snapshot.
    let mut changed = row.clone().into_active_model();
    changed.attempts = Set(3);
    changed.update(&connections.writer).await.unwrap();
    let found = otp_codes::Entity::find_by_id(row.id).one(&lookups).await;
    assert_eq!(found.unwrap().map(|code| code.attempts), Some(3));
    otp_codes::Entity::delete_by_id(row.id)
        .exec(&connections.writer)
        .await
        .unwrap();
    let found = otp_codes::Entity::find_by_id(row.id).one(&lookups).await;
    assert_eq!(found.unwrap(), None);

    // The account lookup of a code attempt, through its covering index.
    let email = EmailAddress::parse("nobody@example.com").unwrap();
    assert_eq!(find_account(&lookups, &email).await.unwrap(), None);
}

#[tokio::test]
async fn lookups_leave_no_read_open_so_the_wal_can_be_checkpointed() {
    let (connections, _folder, path) = sqlite_file().await;
    let lookups = Lookups::new(&connections);
    for _ in 0..3 {
        let row = row_written(&connections).await;
        // One row of many read (the statement stopped early would keep its snapshot).
        let first = otp_codes::Entity::find().one(&lookups).await.unwrap();
        assert!(first.is_some());
        let found = otp_codes::Entity::find_by_id(row.id).one(&lookups).await;
        assert!(found.unwrap().is_some());
    }
    let checkpointer = rusqlite::Connection::open(&path).unwrap();
    let truncate = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(
        truncate(&checkpointer),
        0,
        "nothing reads: the WAL is reset"
    );

    // The check can fail: a read left open on a snapshot makes the same checkpoint busy.
    row_written(&connections).await;
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM otp_codes", [], |row| row.get(0))
        .unwrap();
    row_written(&connections).await;
    assert_eq!(truncate(&checkpointer), 1, "an open read holds the WAL");
    reader.execute_batch("COMMIT").unwrap();
}

/// A new code row, written through sqlx's writer.
async fn row_written(connections: &codeward::infra::db::Connections) -> otp_codes::Model {
    let row = code_row(Uuid::new_v4());
    row.clone()
        .into_active_model()
        .insert(&connections.writer)
        .await
        .unwrap();
    row
}

/// A reader of a WAL file answers busy only while another connection holds the file
/// exclusively (or recovers the WAL): then the lookup reads elsewhere at once rather than
/// wait on its thread in SQLite's busy handler.
#[tokio::test]
async fn a_busy_file_is_reported_instead_of_waited_for() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("busy.db");
    let setup = rusqlite::Connection::open(&path).unwrap();
    setup
        .execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);",
        )
        .unwrap();
    drop(setup);
    let readers = DirectReaders::new(&path, 1);
    let select = Statement::from_string(DatabaseBackend::Sqlite, "SELECT x FROM t");

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch(
            "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO t VALUES (2); COMMIT;",
        )
        .unwrap();
    let started = std::time::Instant::now();
    assert!(readers.query(&select).unwrap().is_none(), "busy");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "reported at once, not waited for"
    );

    drop(holder);
    let rows = readers.query(&select).unwrap().expect("free again");
    assert_eq!(rows.len(), 2);
    let x: i32 = rows[1].try_get("", "x").unwrap();
    assert_eq!(x, 2);
}
