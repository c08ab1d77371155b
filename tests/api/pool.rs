//! The database server's connections as the server finds them after the database dropped them
//! (a restart, a failover, an idle-connection killer): a pooled connection that has sat idle
//! is checked before use and replaced, so no request fails on it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{Backend, backend, spawn_app_with};

/// Ends every connection to `database` but the caller's, as the database server would.
async fn drop_every_connection(server_url: &str, database: &str) -> usize {
    let admin = Database::connect(server_url)
        .await
        .expect("admin connection");
    let killed = match admin.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let sql = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            );
            admin
                .query_all(sql_statement(&admin, &sql))
                .await
                .unwrap()
                .len()
        }
        _ => {
            let sql = format!(
                "SELECT id FROM information_schema.processlist WHERE db = '{database}' \
                 AND id <> CONNECTION_ID()"
            );
            let rows = admin.query_all(sql_statement(&admin, &sql)).await.unwrap();
            for row in &rows {
                let id: i64 = row.try_get_by(0).unwrap();
                admin
                    .execute_unprepared(&format!("KILL {id}"))
                    .await
                    .unwrap();
            }
            rows.len()
        }
    };
    admin.close().await.unwrap();
    killed
}

fn sql_statement(db: &sea_orm::DatabaseConnection, sql: &str) -> sea_orm::Statement {
    sea_orm::Statement::from_string(db.get_database_backend(), sql)
}

/// Runs on PostgreSQL and MySQL/MariaDB (`CODEWARD_TEST_POSTGRES_URL`, `CODEWARD_TEST_MYSQL_URL`);
/// a SQLite file has no server to drop its connections.
#[tokio::test]
async fn connections_the_database_dropped_while_idle_are_replaced_before_a_request_uses_them() {
    let server_url = match backend() {
        Backend::Postgres(url) | Backend::MySql(url) => url,
        Backend::Sqlite => return,
    };
    // The background workers poll rarely here: each poll would take (and drop) a dead
    // connection before the requests do.
    let app = spawn_app_with(&["--email-poll-ms=60000", "--webhook-poll-ms=60000"]).await;
    let sign_in = |n: usize| app.login(&format!("nobody{n}@example.com"), "not the password 1");
    // Several connections in the pool: sign-ins at once.
    let warm = futures::future::join_all((0..8).map(sign_in)).await;
    assert!(warm.iter().all(|r| r.status().as_u16() == 401));

    let database = url::Url::parse(&app.database.url).unwrap().path()[1..].to_owned();
    let killed = drop_every_connection(&server_url, &database).await;
    assert!(killed >= 1, "the server held no connection to drop");
    // Idle long enough to be checked on the way out of the pool.
    tokio::time::sleep(
        codeward::infra::server_pool::CHECK_IF_IDLE_FOR + Duration::from_millis(300),
    )
    .await;

    for round in 0..2 {
        let answers = futures::future::join_all((0..8).map(sign_in)).await;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        assert!(
            statuses.iter().all(|&s| s == 401),
            "round {round} after the database dropped the pool's connections: {statuses:?}"
        );
    }
}
