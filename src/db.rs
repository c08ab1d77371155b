//! Database connections for SQLite, PostgreSQL and MySQL/MariaDB, chosen by the URL scheme.

use std::time::Duration;

use migration::seaql_migrations;
use migration::{Migrator, MigratorTrait};
use sea_orm::EntityTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, TransactionTrait,
};

use crate::config::Config;

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the pool. SQLite runs in WAL mode with foreign keys on and a busy timeout, so readers
/// never block the writer and a brief write contention waits instead of failing.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    let url = config.database_url.expose();
    let mut options = ConnectOptions::new(url.replacen("mariadb://", "mysql://", 1));
    options
        .max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // Statements are logged by our own spans, without their bound values.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Why the database cannot serve traffic, if it cannot.
pub async fn readiness(db: &DatabaseConnection) -> Result<(), String> {
    db.execute_unprepared("SELECT 1")
        .await
        .map_err(|_| "database unreachable".to_owned())?;
    // Read the migrations table directly: sea-orm-migration's status helpers create the table
    // when it is missing, and a probe must never write.
    let applied: Vec<String> = seaql_migrations::Entity::find()
        .all(db)
        .await
        .map_err(|_| "migrations pending (none applied yet)".to_owned())?
        .into_iter()
        .map(|row| row.version)
        .collect();
    let pending = Migrator::migrations()
        .iter()
        .filter(|migration| !applied.contains(&migration.name().to_owned()))
        .count();
    if pending == 0 {
        Ok(())
    } else {
        Err(format!("{pending} migration(s) pending"))
    }
}

/// Begins a transaction that is going to write. On SQLite it takes the write lock at once with
/// a no-op UPDATE: a transaction that reads first and writes later fails with SQLITE_BUSY,
/// without waiting, when another writer committed in between; one that starts by writing
/// waits its turn (busy timeout) instead.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE users SET id = id WHERE 1 = 0")
            .await?;
    }
    Ok(txn)
}
