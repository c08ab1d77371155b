//! Migrations run up, down and up again on every backend; `migrate status` reports them.

use migration::{Migrator, MigratorTrait};
use sea_orm::Database;

use crate::helpers::{fresh_database, run_codeward_on};

#[tokio::test]
async fn migrations_run_up_down_and_up_again() {
    let database = fresh_database().await;
    let db = Database::connect(&database.url).await.unwrap();
    let total = Migrator::migrations().len();

    Migrator::up(&db, None).await.expect("first up");
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        total
    );
    assert!(db_has_table(&db, "users").await);

    Migrator::down(&db, None).await.expect("down to nothing");
    assert!(
        Migrator::get_applied_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !db_has_table(&db, "users").await,
        "down removes what up created"
    );

    Migrator::up(&db, None).await.expect("second up");
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        total
    );
    assert!(db_has_table(&db, "users").await);
}

async fn db_has_table(db: &sea_orm::DatabaseConnection, table: &str) -> bool {
    let manager = migration::SchemaManager::new(db);
    manager.has_table(table).await.unwrap()
}

#[tokio::test]
async fn the_users_email_is_unique() {
    use sea_orm::{ActiveModelTrait, Set};
    let database = fresh_database().await;
    let db = Database::connect(&database.url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let user = |email: &str| entity::users::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        email: Set(email.to_owned()),
        password_hash: Set(None),
        email_verified_at: Set(None),
        password_changed_at: Set(None),
        locale: Set("en".to_owned()),
        created_at: Set(chrono::Utc::now()),
        updated_at: Set(chrono::Utc::now()),
        disabled_at: Set(None),
    };

    user("ada@example.com")
        .insert(&db)
        .await
        .expect("first insert");
    let second = user("ada@example.com").insert(&db).await;

    assert!(
        second.is_err(),
        "a second row with the same email must be refused"
    );
}

#[test]
fn the_migrate_command_applies_reports_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let run = |args: &[&str]| run_codeward_on(&url, args);

    run(&["migrate", "up"]);
    let applied = run(&["migrate", "status"]);
    run(&["migrate", "down", "--steps", "1"]);
    let after_down = run(&["migrate", "status"]);

    let newest = migration::Migrator::migrations()
        .last()
        .map(|m| m.name().to_owned())
        .unwrap();
    assert!(applied.contains(&format!("Applied\t{newest}")), "{applied}");
    assert!(
        after_down.contains(&format!("Pending\t{newest}")),
        "{after_down}"
    );
    assert!(
        after_down.contains("Applied\tm20261122_000001_create_users"),
        "{after_down}"
    );
}

#[tokio::test]
async fn sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout() {
    use sea_orm::{ConnectionTrait, Statement};
    // Always SQLite, whichever backend the suite runs on: these pragmas are SQLite's own.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let config = crate::helpers::test_config(&url, &dir, &[]);

    let db = codeward::infra::db::connect(&config).await.unwrap();

    let pragma = |name: &str| {
        let db = &db;
        let sql = format!("PRAGMA {name}");
        async move {
            let row = db
                .query_one(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<String>(0)
                .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                .unwrap()
        }
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("foreign_keys").await, "1");
    assert_eq!(pragma("busy_timeout").await, "5000");
}

#[tokio::test]
async fn two_instances_starting_at_once_on_an_empty_database_migrate_it_once() {
    let database = fresh_database().await;
    let sink = crate::smtp::SmtpSink::start().url();

    let (first, second) = tokio::join!(
        crate::helpers::start_instance(&database.url, &sink, &[]),
        crate::helpers::start_instance(&database.url, &sink, &[]),
    );

    for instance in [&first, &second] {
        let ready = instance.api().get("/readyz").await;
        assert_eq!(ready.status().as_u16(), 200);
    }
    let db = Database::connect(&database.url).await.unwrap();
    let applied = Migrator::get_applied_migrations(&db).await.unwrap();
    assert_eq!(
        applied.len(),
        Migrator::migrations().len(),
        "each migration recorded once"
    );
}
