//! Where the short write transactions of the busiest operations begin: a code attempt, a
//! code request and a password sign-in's. On a SQLite file they run in place on the calling
//! thread (`sqlite_direct`); elsewhere they are sea-orm transactions on the writer.

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use crate::infra::db::{self, Connections};
use crate::infra::sqlite_direct::{DirectTxn, DirectWriter};

/// Begins write transactions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Transactions {
    writer: DatabaseConnection,
    /// On a SQLite file: the connection transactions run on in place.
    direct: Option<Arc<DirectWriter>>,
}

impl Transactions {
    /// On `connections`' writer, in place on a SQLite file.
    pub fn new(connections: &Connections) -> Self {
        Self {
            writer: connections.writer.clone(),
            direct: connections.direct.clone(),
        }
    }

    /// A transaction whose first statement writes (`db::begin_writing`): on a SQLite file it
    /// holds the write lock from its start (`BEGIN IMMEDIATE`).
    pub async fn begin_writing(&self) -> Result<WriteTxn, DbErr> {
        Ok(match &self.direct {
            Some(direct) => WriteTxn::Direct(
                direct
                    .begin(self.writer.get_sqlite_connection_pool())
                    .await?,
            ),
            None => WriteTxn::Pooled(db::begin_writing(&self.writer).await?),
        })
    }
}

/// A write transaction of either kind. Dropped without `commit`, it rolls back.
#[derive(Debug)]
pub enum WriteTxn {
    Pooled(DatabaseTransaction),
    Direct(DirectTxn),
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            Self::Pooled(txn) => txn.commit().await,
            Self::Direct(txn) => txn.commit(),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Self::Pooled(txn) => txn.get_database_backend(),
            Self::Direct(_) => DbBackend::Sqlite,
        }
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Self::Pooled(txn) => txn.execute(stmt).await,
            Self::Direct(txn) => txn.execute(&stmt),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Self::Pooled(txn) => txn.execute_unprepared(sql).await,
            Self::Direct(txn) => txn.execute_unprepared(sql),
        }
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Self::Pooled(txn) => txn.query_one(stmt).await,
            Self::Direct(txn) => Ok(txn.query(&stmt)?.into_iter().next()),
        }
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Self::Pooled(txn) => txn.query_all(stmt).await,
            Self::Direct(txn) => txn.query(&stmt),
        }
    }
}
