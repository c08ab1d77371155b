//! Database connections for SQLite, PostgreSQL and MySQL/MariaDB, chosen by the URL scheme.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use migration::seaql_migrations;
use migration::{Migrator, MigratorTrait};
use sea_orm::EntityTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, IsolationLevel, RuntimeErr, TransactionTrait,
};

use crate::config::Config;
use crate::infra::server_pool;
use crate::infra::sqlite_direct::{DirectReaders, DirectWriter, WRITERS_THRESHOLD};

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one pool for reads and writes alike: what the commands (`migrate`, `users`, …) use.
/// SQLite runs in WAL mode with foreign keys on and a busy timeout, so readers never block the
/// writer and a brief write contention waits instead of failing.
///
/// A refusal names the database (password masked), says why once, and hints at the fix.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, ConnectError> {
    let (url, options) = prepare(config).await?;
    open(config, &url, options).await
}

/// The server's way to the database: a pool for reads, and the connection writes go through.
///
/// On a SQLite file, the writes of this process take turns on ONE connection, handed out
/// first come, first served, so a write waits its turn in order instead of sleeping in
/// SQLite's busy handler (1, 2, 5, 10 … ms) behind another write of the same process; the busy
/// handler is left for other processes on the same file. Reads run at once on a pool of their
/// own (WAL: readers never wait for the writer), opened `query_only`, so a write sent there by
/// mistake fails loudly in the tests instead of contending. PostgreSQL and MySQL/MariaDB take
/// concurrent writers themselves, and an in-memory SQLite database lives in one pool: there
/// both are the same pool.
///
/// The rule that follows: while a task holds a transaction on `writer`, it never waits for
/// `writer` again, not even to read. On SQLite the transaction holds the writer's only
/// connection, so that wait lasts until the acquire timeout and ends in an error; on the
/// other databases enough such tasks at once empty the pool the same way. Read through the
/// transaction, or through `reads`.
///
/// On a SQLite file the busiest write transactions (`writes::Transactions`) run on a second
/// connection, `direct`, in place on the calling thread; they hold `writer`'s connection
/// meanwhile, so they take the same turns. Its point lookups (`lookups::Lookups`) read in
/// place too, on `direct_reads`.
#[derive(Clone)]
pub struct Connections {
    pub reads: DatabaseConnection,
    pub writer: DatabaseConnection,
    pub direct: Option<Arc<DirectWriter>>,
    pub direct_reads: Option<Arc<DirectReaders>>,
}

impl Connections {
    /// Reads and writes through one pool, as the commands (`db::connect`) do.
    pub fn one(db: DatabaseConnection) -> Self {
        Self {
            reads: db.clone(),
            writer: db,
            direct: None,
            direct_reads: None,
        }
    }
}

/// Opens the server's `Connections`.
pub async fn connect_for_serving(config: &Config) -> Result<Connections, ConnectError> {
    let (url, options) = prepare(config).await?;
    let Some(path) = sqlite_path(&url) else {
        return Ok(Connections::one(open(config, &url, options).await?));
    };
    let mut writer = options.clone();
    writer.max_connections(1).min_connections(1);
    // Its commits leave the WAL's checkpoints to the thread `direct` starts, as direct's do.
    writer.map_sqlx_sqlite_opts(|opts| {
        sqlite_options(opts).pragma("wal_autocheckpoint", WRITERS_THRESHOLD.to_string())
    });
    // First: it creates the file and switches it to WAL before a read-only connection opens.
    let writer = open(config, &url, writer).await?;
    let direct = DirectWriter::open(Path::new(path), SQLITE_BUSY_TIMEOUT)
        .map_err(|error| connect_error(config, format!("{error:#}")))?;
    let mut reads = options;
    reads.map_sqlx_sqlite_opts(|opts| sqlite_options(opts).pragma("query_only", "ON"));
    let reads = open(config, &url, reads).await?;
    // One per thread that may read at once: tokio's workers, one per core.
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    Ok(Connections {
        reads,
        writer,
        direct: Some(Arc::new(direct)),
        direct_reads: Some(Arc::new(DirectReaders::new(Path::new(path), threads))),
    })
}

/// The URL as connected to and the pool's options; a database server is probed first.
async fn prepare(config: &Config) -> Result<(String, ConnectOptions), ConnectError> {
    let url = config
        .database_url
        .expose()
        .replacen("mariadb://", "mysql://", 1);
    let url = if url.starts_with("sqlite:") {
        sqlite_creating_the_file(&url)
    } else {
        // The pool retries a failed connection until its acquire timeout and then reports only
        // that it timed out; one connection of our own first tells the cause, at once.
        probe(&url)
            .await
            .map_err(|why| connect_error(config, why))?;
        url
    };
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        // Statements are logged by our own spans, without their bound values.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(sqlite_options);
    // sqlx pings a connection every time it leaves the pool. A SQLite connection lives in this
    // process and cannot be dropped by a server, so there the ping only costs a round trip
    // to the connection's thread per statement: the load benchmark's profile of get_me had
    // 15% of the server's time in it. A database server's pool pings only a connection that
    // sat idle (`server_pool`, which sets its own check).
    if url.starts_with("sqlite:") {
        options.test_before_acquire(false);
    }
    Ok((url, options))
}

/// Every SQLite connection's settings.
fn sqlite_options(
    opts: sea_orm::sqlx::sqlite::SqliteConnectOptions,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    opts.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
}

fn connect_error(config: &Config, why: String) -> ConnectError {
    ConnectError {
        database: config.database_url.masked(),
        why,
    }
}

/// Opens a pool with `options`.
async fn open(
    config: &Config,
    url: &str,
    options: ConnectOptions,
) -> Result<DatabaseConnection, ConnectError> {
    // Processes opening one new SQLite file at the same moment race to switch it to WAL, and
    // the loser is told "database is locked" at once, busy timeout or not: try again shortly.
    let mut tries = 0;
    loop {
        let connected = if url.starts_with("sqlite:") {
            Database::connect(options.clone()).await
        } else {
            server_pool::connect(&options).await
        };
        match connected {
            Err(error) if tries < 20 && error.to_string().contains("database is locked") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(db) => return Ok(db),
            // Start at sqlx's error: sea-orm's wrapper only adds "Connection Error: ".
            Err(DbErr::Conn(RuntimeErr::SqlxError(error))) => {
                return Err(connect_error(config, with_hint(url, &error)));
            }
            Err(error) => return Err(connect_error(config, with_hint(url, &error))),
        }
    }
}

/// Why `connect` failed: the database, password masked, and the cause with a hint.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {database}: {why}")]
pub struct ConnectError {
    database: String,
    why: String,
}

/// How long one connection attempt, or a wait for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `url` with `mode=rwc` when it names no mode, so a fresh path becomes a new database instead
/// of "unable to open database file". A mode given (`ro`, `rw`, `memory`) is the operator's
/// intent and stays; an in-memory database has no file to create.
fn sqlite_creating_the_file(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let has_mode = query.split('&').any(|pair| pair.starts_with("mode="));
    if has_mode || path.contains(":memory:") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{path}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    }
}

/// Opens and closes one PostgreSQL or MySQL connection, and says why it failed.
async fn probe(url: &str) -> Result<(), String> {
    use sea_orm::sqlx::Connection as _;
    let attempt = async {
        if url.starts_with("mysql:") {
            sea_orm::sqlx::MySqlConnection::connect(url)
                .await?
                .close()
                .await
        } else {
            sea_orm::sqlx::PgConnection::connect(url)
                .await?
                .close()
                .await
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(with_hint(url, &error)),
        Err(_) => Err(format!(
            "no answer within {} s; is {} reachable from here (address, firewall)?",
            CONNECT_TIMEOUT.as_secs(),
            server_address(url)
        )),
    }
}

/// `error`, followed by what to check for the usual causes. Walks `error`'s sources, which
/// sqlx and sea-orm wrap in one another, for the one that tells.
fn with_hint(url: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut hint = None;
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(sqlx_error) = current.downcast_ref::<sea_orm::sqlx::Error>() {
            hint = hint.or_else(|| hint_for(url, sqlx_error));
        }
        cause = current.source();
    }
    let message = crate::infra::telemetry::each_cause_once(error);
    match hint {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    }
}

fn hint_for(url: &str, error: &sea_orm::sqlx::Error) -> Option<String> {
    use sea_orm::sqlx::Error;
    match error {
        Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut => Some(format!(
            "is the database server running at {}, and reachable from here?",
            server_address(url)
        )),
        Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL's invalid_password and invalid_authorization_specification; MySQL's
            // ER_ACCESS_DENIED_ERROR.
            Some("28P01" | "28000" | "1045") => {
                Some("check the user name and password in CODEWARD_DATABASE_URL".to_owned())
            }
            // PostgreSQL's invalid_catalog_name; MySQL's ER_BAD_DB_ERROR.
            Some("3D000" | "1049") => Some(
                "create the database first, or fix its name in CODEWARD_DATABASE_URL".to_owned(),
            ),
            // SQLITE_CANTOPEN
            Some("14") => {
                let path = sqlite_path(url).unwrap_or("the database file");
                let mode = url.split_once('?').and_then(|(_, query)| {
                    query.split('&').find_map(|pair| pair.strip_prefix("mode="))
                });
                Some(match mode {
                    Some(mode @ ("ro" | "rw")) => format!(
                        "with mode={mode} the file must exist already: does {path} exist (drop \
                         the mode, or use mode=rwc, to create it)?"
                    ),
                    _ => format!("does the folder of {path} exist, and may codeward write there?"),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// `host:port` of a server URL, the port defaulted by scheme, for hints.
fn server_address(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "the address in CODEWARD_DATABASE_URL".to_owned();
    };
    let default_port = if parsed.scheme() == "mysql" {
        3306
    } else {
        5432
    };
    match parsed.host_str().filter(|host| !host.is_empty()) {
        Some(host) => format!("{host}:{}", parsed.port().unwrap_or(default_port)),
        None => "the address in CODEWARD_DATABASE_URL".to_owned(),
    }
}

/// The file path of a SQLite URL, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// Applies every pending migration.
/// Several instances may start at once on an empty database: they take a lock first, so the
/// migrations run once and the others find them applied. PostgreSQL and MySQL/MariaDB use an
/// advisory lock held by a connection of its own, outside the pool (so a pool of one connection
/// migrates too); SQLite a lock file beside the database.
pub async fn migrate_up(db: &DatabaseConnection, config: &Config) -> Result<(), DbErr> {
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    let failed = |e: &dyn std::fmt::Display| DbErr::Custom(format!("migration lock: {e}"));
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let mut lock = db
                .get_postgres_connection_pool()
                .connect_options()
                .connect()
                .await
                .map_err(|e| failed(&e))?;
            sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut lock)
                .await
                .map_err(|e| failed(&e))?;
            let result = Migrator::up(db, None).await;
            // Closing the connection would release it too; unlock to hand it over at once.
            let _ = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut lock)
                .await;
            let _ = lock.close().await;
            result
        }
        DatabaseBackend::MySql => {
            let mut lock = db
                .get_mysql_connection_pool()
                .connect_options()
                .connect()
                .await
                .map_err(|e| failed(&e))?;
            sea_orm::sqlx::query("SELECT GET_LOCK('codeward_migrations', 600)")
                .execute(&mut lock)
                .await
                .map_err(|e| failed(&e))?;
            let result = Migrator::up(db, None).await;
            let _ = sea_orm::sqlx::query("SELECT RELEASE_LOCK('codeward_migrations')")
                .execute(&mut lock)
                .await;
            let _ = lock.close().await;
            result
        }
        DatabaseBackend::Sqlite => {
            let Some(path) = sqlite_lock_path(config.database_url.expose()) else {
                return Migrator::up(db, None).await;
            };
            let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)?;
                file.lock()?;
                Ok(file)
            })
            .await
            .map_err(|e| failed(&e))?
            .map_err(|e| failed(&e))?;
            let result = Migrator::up(db, None).await;
            // Dropping the file releases the lock.
            drop(file);
            result
        }
    }
}

/// An arbitrary key, the same in every instance: "cwmigrat" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x6377_6d69_6772_6174;

/// `<database file>.migrate-lock`, or `None` for an in-memory database.
fn sqlite_lock_path(url: &str) -> Option<std::path::PathBuf> {
    sqlite_path(url).map(|path| std::path::PathBuf::from(format!("{path}.migrate-lock")))
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

/// Begins a transaction that is going to write.
///
/// On SQLite it takes the write lock at once with a no-op UPDATE: a transaction that reads
/// first and writes later fails with SQLITE_BUSY, without waiting, when another writer
/// committed in between; one that starts by writing waits its turn (busy timeout) instead.
///
/// On MySQL/MariaDB it runs at READ COMMITTED. At InnoDB's default, REPEATABLE READ, an
/// UPDATE that matches nothing (revoking the codes of a new user) locks the index gap where
/// the row would be, and two sign-ups whose inserts land in the same gap deadlock; READ
/// COMMITTED takes no such gap locks. Every check-then-act is one conditional statement, which
/// needs no stronger isolation. (PostgreSQL's default already is READ COMMITTED.)
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = begin_writing(db).await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE users SET id = id WHERE 1 = 0")
            .await?;
    }
    Ok(txn)
}

/// `begin_write` for a transaction whose first statement writes. On SQLite that statement
/// takes the write lock itself: a transaction that holds no snapshot yet waits in the busy
/// handler and reads afresh, as `BEGIN IMMEDIATE` would, so the no-op UPDATE of `begin_write`
/// is a round trip saved (a code attempt, run on every guess, starts with its budget's upsert).
pub async fn begin_writing(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::MySql => {
            db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
        }
        DatabaseBackend::Sqlite | DatabaseBackend::Postgres => db.begin().await,
    }
}

/// Whether `error` is a deadlock or serialization failure (SQLSTATE 40001, or MySQL's 1213),
/// which the same statement may well pass when run again.
pub fn is_retryable(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))
    | DbErr::Query(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))) = error
    else {
        return false;
    };
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "1213"))
}

/// Whether `error` is a unique-constraint violation: the one place that tells, so a use-case
/// can turn a taken value into its own answer.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::{connect_for_serving, sqlite_creating_the_file};
    use crate::config::tests::test_config;

    #[tokio::test]
    async fn on_a_sqlite_file_writes_go_through_one_connection_and_the_read_pool_refuses_to_write()
    {
        let folder = tempfile::tempdir().unwrap();
        let url = format!("--database-url=sqlite://{}/a.db", folder.path().display());
        let connections = connect_for_serving(&test_config(&[url.as_str()]))
            .await
            .unwrap();
        let writer = connections.writer.get_sqlite_connection_pool();
        assert_eq!(writer.options().get_max_connections(), 1);
        let reads = connections.reads.get_sqlite_connection_pool();
        assert!(reads.options().get_max_connections() > 1);

        let create = "CREATE TABLE t (n INTEGER)";
        connections.writer.execute_unprepared(create).await.unwrap();
        let insert = "INSERT INTO t VALUES (1)";
        connections.writer.execute_unprepared(insert).await.unwrap();
        let refused = connections.reads.execute_unprepared(insert).await;
        let error = refused.expect_err("a write on the read pool").to_string();
        assert!(error.contains("readonly"), "{error}");
        // The writer's commits are what the readers see.
        let count = "SELECT COUNT(*) AS n FROM t";
        let row = connections.reads.query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            count,
        ));
        let n: i64 = row.await.unwrap().unwrap().try_get("", "n").unwrap();
        assert_eq!(n, 1);
    }

    /// The writers' commits leave the WAL alone (their threshold is far above what is written
    /// here), so only the checkpoint thread can bring a committed row into the database file.
    #[tokio::test]
    async fn the_wal_is_checkpointed_off_the_write_turn() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("a.db");
        let url = format!("--database-url=sqlite://{}", file.display());
        let connections = connect_for_serving(&test_config(&[url.as_str()]))
            .await
            .unwrap();
        let threshold = connections
            .writer
            .query_one(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA wal_autocheckpoint",
            ));
        let threshold: i64 = threshold.await.unwrap().unwrap().try_get_by(0).unwrap();
        assert_eq!(threshold, i64::from(super::WRITERS_THRESHOLD));

        let create = "CREATE TABLE t (marker BLOB)";
        connections.writer.execute_unprepared(create).await.unwrap();
        // Written in place, on the direct writer, as a request's transaction is.
        let marker = uuid::Uuid::new_v4();
        let direct = connections
            .direct
            .as_ref()
            .expect("a SQLite file's direct writer");
        let pool = connections.writer.get_sqlite_connection_pool();
        let txn = direct.begin(pool).await.unwrap();
        txn.execute(&sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Sqlite,
            "INSERT INTO t VALUES (?)",
            [marker.as_bytes().to_vec().into()],
        ))
        .unwrap();
        txn.commit().unwrap();

        // The database file alone (no WAL beside it) holds the row once it is checkpointed.
        let in_the_file = || {
            let bytes = std::fs::read(&file).unwrap();
            bytes.windows(16).any(|w| w == marker.as_bytes())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !in_the_file() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(in_the_file(), "the row never reached the database file");
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_one_pool_for_reads_and_writes() {
        let connections = connect_for_serving(&test_config(&["--database-url=sqlite::memory:"]))
            .await
            .unwrap();
        let create = "CREATE TABLE t (n INTEGER)";
        connections.writer.execute_unprepared(create).await.unwrap();
        let insert = "INSERT INTO t VALUES (1)";
        connections.reads.execute_unprepared(insert).await.unwrap();
    }

    #[test]
    fn a_sqlite_url_naming_no_mode_gets_one_that_creates_the_file_and_a_given_mode_stays() {
        for (url, opened) in [
            ("sqlite://fresh.db", "sqlite://fresh.db?mode=rwc"),
            (
                "sqlite:fresh.db?cache=shared",
                "sqlite:fresh.db?cache=shared&mode=rwc",
            ),
            ("sqlite://fresh.db?mode=ro", "sqlite://fresh.db?mode=ro"),
            ("sqlite://fresh.db?mode=rw", "sqlite://fresh.db?mode=rw"),
            ("sqlite://fresh.db?mode=rwc", "sqlite://fresh.db?mode=rwc"),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(sqlite_creating_the_file(url), opened, "{url}");
        }
    }
}
