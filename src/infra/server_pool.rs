//! The pool of a database server's connections (PostgreSQL, MySQL/MariaDB), with its liveness
//! check only where it tells something.
//!
//! sqlx checks a connection every time it leaves the pool (`test_before_acquire`): one more
//! round trip to the server before each use, two per wrong code guess (its lookup and its
//! transaction each take a connection) beside its own seven (the lookup, BEGIN, four
//! statements, COMMIT). A connection that was in use a moment ago is as good as known to be
//! alive, so it is checked only when it has sat idle for `CHECK_IF_IDLE_FOR` (HikariCP skips
//! its check the same way, within `aliveBypassWindowMs`, 500 ms). A connection found dead is
//! dropped and another taken, as before; one that died within the window fails its request's
//! first statement, as one dying mid-request would.
//!
//! sqlx 0.8 also pings every connection on its way back into the pool, in a task after the
//! request's answer; no pool option turns that one off, so it stays (two round trips per
//! wrong guess, which the load benchmark's ceilings pay too).

use std::time::Duration;

use sea_orm::sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sea_orm::sqlx::{self, ConnectOptions as _, Connection, Database, MySql, Pool, Postgres};
use sea_orm::{
    ConnectOptions, DatabaseConnection, DbErr, RuntimeErr, SqlxMySqlConnector,
    SqlxPostgresConnector,
};

/// How long a connection may sit in the pool before it is checked on the way out.
pub const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens the pool `options` describe, for a `postgres://` or `mysql://` URL; statements are
/// not logged by sqlx (our own spans log them, without their values).
pub async fn connect(options: &ConnectOptions) -> Result<DatabaseConnection, DbErr> {
    let url = options.get_url();
    if url.starts_with("mysql:") {
        let pool = open::<MySql>(options, url.parse()).await?;
        Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
    } else {
        let pool = open::<Postgres>(options, url.parse()).await?;
        Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
    }
}

/// The pool of `DB` connections made with `connect` (the URL parsed), statements unlogged.
async fn open<DB: Database>(
    options: &ConnectOptions,
    connect: Result<ConnectOptionsOf<DB>, sqlx::Error>,
) -> Result<Pool<DB>, DbErr> {
    let failed = |error| DbErr::Conn(RuntimeErr::SqlxError(error));
    let connect = connect.map_err(failed)?.disable_statement_logging();
    let pool = checked_when_idle(options).connect_with(connect).await;
    pool.map_err(failed)
}

type ConnectOptionsOf<DB> = <<DB as Database>::Connection as Connection>::Options;

/// `options`' pool settings (size, timeouts), with the check on the way out only after
/// `CHECK_IF_IDLE_FOR`.
fn checked_when_idle<DB: Database>(options: &ConnectOptions) -> PoolOptions<DB> {
    options
        .clone()
        .sqlx_pool_options::<DB>()
        .test_before_acquire(false)
        .before_acquire(|conn, meta: PoolConnectionMetadata| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}
