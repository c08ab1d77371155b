//! The SQLite write transactions run in place (`infra::sqlite_direct`, through
//! `infra::writes::Transactions`): what they write reads the same as what sqlx writes, they
//! take the same turn as every other write of the process (which they keep only for a bounded
//! streak, and give back when a wait is abandoned), a dropped one rolls back, and another
//! process's lock is waited for without holding up the thread. SQLite only: the other
//! databases have no such path.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use codeward::infra::db::{self, Connections};
use codeward::infra::writes::{Transactions, WriteTxn};
use entity::otp_codes;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Statement};
use uuid::Uuid;

use crate::helpers::test_config;

/// A migrated SQLite file, its connections, and the folder that holds both.
pub(crate) async fn sqlite_file() -> (Connections, tempfile::TempDir, std::path::PathBuf) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("codeward.db");
    let url = format!("sqlite://{}", path.display());
    let config = test_config(&url, &folder, &[]);
    let connections = db::connect_for_serving(&config).await.unwrap();
    db::migrate_up(&connections.writer, &config).await.unwrap();
    assert!(
        connections.direct.is_some(),
        "a SQLite file writes in place"
    );
    (connections, folder, path)
}

pub(crate) fn code_row(id: Uuid) -> otp_codes::Model {
    // Whole microseconds, as stored; a time with nanoseconds would not read back equal.
    let now = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap();
    otp_codes::Model {
        id,
        user_id: Uuid::new_v4(),
        purpose: "verify_email".to_owned(),
        code_hash: "ab".repeat(32),
        key_id: "k1".to_owned(),
        email: "someone@example.com".to_owned(),
        attempts: 2,
        max_attempts: 5,
        created_at: now,
        expires_at: now + TimeDelta::minutes(15),
        consumed_at: None,
        revoked_at: Some(now),
        ip: Some("203.0.113.7".to_owned()),
        user_agent: None,
        code_sealed: None,
    }
}

/// Every column of the row with `id`, as SQLite stores it (type and bytes), id aside.
async fn stored(connections: &Connections, id: Uuid) -> String {
    let sql = "SELECT typeof(user_id) || ':' || quote(user_id) || ' ' || purpose || ' ' \
               || code_hash || ' ' || attempts || ' ' || typeof(attempts) || ' ' || created_at \
               || ' ' || expires_at || ' ' || quote(consumed_at) || ' ' || revoked_at || ' ' \
               || quote(ip) || ' ' || quote(user_agent) AS row FROM otp_codes WHERE id = ?";
    let statement =
        Statement::from_sql_and_values(sea_orm::DatabaseBackend::Sqlite, sql, [id.into()]);
    let row = connections.reads.query_one(statement).await.unwrap();
    row.expect("the row").try_get("", "row").unwrap()
}

#[tokio::test]
async fn a_row_written_in_place_is_stored_and_read_exactly_as_through_sqlx() {
    let (connections, _folder, _) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let in_place = code_row(Uuid::new_v4());
    let through_sqlx = otp_codes::Model {
        id: Uuid::new_v4(),
        ..in_place.clone()
    };

    let txn = transactions.begin_writing().await.unwrap();
    assert!(matches!(txn, WriteTxn::Direct(_)));
    in_place
        .clone()
        .into_active_model()
        .insert(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    through_sqlx
        .clone()
        .into_active_model()
        .insert(&connections.writer)
        .await
        .unwrap();

    // The same bytes in the file, whichever connection wrote them.
    let stored_in_place = stored(&connections, in_place.id).await;
    assert!(stored_in_place.starts_with("blob:X'"), "{stored_in_place}");
    assert_eq!(stored_in_place, stored(&connections, through_sqlx.id).await);
    // And each read back equal, through sqlx and in place alike.
    let by_sqlx = otp_codes::Entity::find_by_id(in_place.id)
        .one(&connections.reads)
        .await
        .unwrap();
    assert_eq!(by_sqlx.as_ref(), Some(&in_place));
    let txn = transactions.begin_writing().await.unwrap();
    for expected in [&in_place, &through_sqlx] {
        let read = otp_codes::Entity::find_by_id(expected.id).one(&txn).await;
        assert_eq!(read.unwrap().as_ref(), Some(expected));
    }
    // Many rows at once too (the migrations' decoy codes besides these two).
    let all = otp_codes::Entity::find().all(&txn).await.unwrap();
    let by_sqlx = otp_codes::Entity::find().all(&connections.reads).await;
    assert_eq!(all, by_sqlx.unwrap());
}

#[tokio::test]
async fn a_transaction_dropped_without_commit_is_rolled_back_and_the_writer_is_free_again() {
    let (connections, _folder, _) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let row = code_row(Uuid::new_v4());

    let txn = transactions.begin_writing().await.unwrap();
    row.clone().into_active_model().insert(&txn).await.unwrap();
    drop(txn);

    let found = otp_codes::Entity::find_by_id(row.id)
        .one(&connections.reads)
        .await
        .unwrap();
    assert_eq!(found, None, "rolled back");
    let insert = row.into_active_model().insert(&connections.writer);
    tokio::time::timeout(Duration::from_secs(2), insert)
        .await
        .expect("the writer is free")
        .unwrap();
    // And the next transaction in place begins as usual.
    let txn = transactions.begin_writing().await.unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn a_write_through_sqlx_waits_its_turn_while_a_transaction_runs_in_place() {
    let (connections, _folder, _) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let txn = transactions.begin_writing().await.unwrap();
    let first = code_row(Uuid::new_v4());
    first
        .clone()
        .into_active_model()
        .insert(&txn)
        .await
        .unwrap();

    // It holds the writer pool's one connection: the process's other writes queue for it in
    // order, rather than meeting SQLite's lock and sleeping in the busy handler.
    let pool = connections.writer.get_sqlite_connection_pool();
    assert!(pool.try_acquire().is_none(), "the turn is taken");
    let writer = connections.writer.clone();
    let other = code_row(Uuid::new_v4());
    let other_id = other.id;
    let mut write = tokio::spawn(async move { other.into_active_model().insert(&writer).await });
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut write).await;
    assert!(waited.is_err(), "the sqlx write waits for the transaction");

    txn.commit().await.unwrap();
    let written = tokio::time::timeout(Duration::from_secs(2), write).await;
    written.expect("its turn came").unwrap().unwrap();
    for id in [first.id, other_id] {
        let found = otp_codes::Entity::find_by_id(id)
            .one(&connections.reads)
            .await;
        assert!(found.unwrap().is_some());
    }
}

/// Another process holding SQLite's write lock (here a connection of its own) is waited for
/// by pausing, not in SQLite's busy handler: on a one-thread runtime the rest of the process
/// keeps running meanwhile, and the transaction begins once the lock is free.
#[tokio::test(flavor = "current_thread")]
async fn another_process_lock_is_waited_for_without_holding_up_the_thread() {
    let (connections, _folder, path) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let other_process = rusqlite::Connection::open(&path).unwrap();
    other_process.execute_batch("BEGIN IMMEDIATE").unwrap();

    let row = code_row(Uuid::new_v4());
    let id = row.id;
    let mut begin = tokio::spawn(async move {
        let txn = transactions.begin_writing().await?;
        row.into_active_model().insert(&txn).await?;
        txn.commit().await
    });
    // The thread is free: this task's timer fires while the other one waits for the lock.
    let waited = tokio::time::timeout(Duration::from_millis(200), &mut begin).await;
    assert!(waited.is_err(), "it waits while the lock is held");

    other_process.execute_batch("COMMIT").unwrap();
    let begun = tokio::time::timeout(Duration::from_secs(2), begin).await;
    begun
        .expect("it began once the lock was free")
        .unwrap()
        .unwrap();
    let found = otp_codes::Entity::find_by_id(id)
        .one(&connections.reads)
        .await;
    assert!(found.unwrap().is_some());
}

/// Transactions in place keep the writer pool's connection while more of them wait (see
/// `sqlite_direct::Turn`), but only for a bounded streak: a write through sqlx still gets its
/// turn while they never stop coming.
#[tokio::test]
async fn a_write_through_sqlx_gets_its_turn_while_transactions_in_place_keep_coming() {
    let (connections, _folder, _) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut busy = Vec::new();
    for _ in 0..8 {
        let (transactions, stop) = (transactions.clone(), stop.clone());
        busy.push(tokio::spawn(async move {
            let mut done = 0_u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let txn = transactions.begin_writing().await.unwrap();
                code_row(Uuid::new_v4())
                    .into_active_model()
                    .insert(&txn)
                    .await
                    .unwrap();
                txn.commit().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let write = code_row(Uuid::new_v4())
        .into_active_model()
        .insert(&connections.writer);
    let written = tokio::time::timeout(Duration::from_secs(2), write).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    written.expect("the sqlx write got its turn").unwrap();
    for task in busy {
        assert!(task.await.unwrap() > 0, "every task wrote");
    }
}

/// A transaction in place that gave up waiting (its request went away) right after the one
/// before it kept the writer pool's connection for it: the connection goes back to the pool,
/// and the process's other writes do not wait for the next transaction in place.
#[tokio::test(flavor = "current_thread")]
async fn a_wait_given_up_leaves_the_writer_to_the_other_writes() {
    let (connections, _folder, _) = sqlite_file().await;
    let transactions = Transactions::new(&connections);
    let first = transactions.begin_writing().await.unwrap();
    let mut waiting = Box::pin(transactions.begin_writing());
    let polled = tokio::time::timeout(Duration::from_millis(20), &mut waiting).await;
    assert!(polled.is_err(), "the second one waits for the first");
    // The first ends while the second waits, so it keeps the writer for it; then the second
    // is dropped unpolled, as a cancelled request's future is.
    first.commit().await.unwrap();
    drop(waiting);

    let write = code_row(Uuid::new_v4())
        .into_active_model()
        .insert(&connections.writer);
    let written = tokio::time::timeout(Duration::from_secs(2), write).await;
    written.expect("the writer went back to the pool").unwrap();
}
