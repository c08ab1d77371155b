//! Where the point lookups of the busiest operations read: an account by its address before a
//! code attempt or a sign-in, an access token's live session, an API key. On a SQLite file
//! they read in place on the calling thread (`sqlite_direct::DirectReaders`); elsewhere, and
//! whenever SQLite answers busy, on the read pool.

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};

use crate::infra::db::Connections;
use crate::infra::sqlite_direct::DirectReaders;

/// Reads a few rows by a key or a unique index; cheap to clone. Only for such statements: in
/// place, the calling thread is busy while one runs.
#[derive(Clone, Debug)]
pub struct Lookups {
    pool: DatabaseConnection,
    /// On a SQLite file: the connections lookups read in place on.
    direct: Option<Arc<DirectReaders>>,
}

impl Lookups {
    /// On `connections`' read pool, in place on a SQLite file.
    pub fn new(connections: &Connections) -> Self {
        Self {
            pool: connections.reads.clone(),
            direct: connections.direct_reads.clone(),
        }
    }

    /// Whether lookups read in place (a SQLite file).
    pub fn in_place(&self) -> bool {
        self.direct.is_some()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Lookups {
    fn get_database_backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    /// On the read pool, which refuses writes on SQLite: lookups only read.
    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.pool.execute(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.pool.execute_unprepared(sql).await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.query_all(stmt).await?.into_iter().next())
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if let Some(direct) = &self.direct
            && let Some(rows) = direct.query(&stmt)?
        {
            return Ok(rows);
        }
        self.pool.query_all(stmt).await
    }
}
