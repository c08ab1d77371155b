//! Statements of the busiest paths whose SQL is built once per database backend.
//!
//! sea-query builds a statement as a tree of boxed expressions and renders it to text on every
//! call; for the statements every request runs that was a sizeable share of a request's CPU
//! (sea-query 5–7% of the wrong guess's profile, docs/performance.md), and on SQLite much of
//! it inside the write turn that every write of the process waits for. A [`SqlOnce`] keeps the
//! text the first build rendered; later calls only bind the new values.
//!
//! The values are given by hand, in the order the builder binds them. So that a builder changed
//! without its values cannot slip through, debug builds (every test) build the statement on
//! every call as well and panic if its SQL or values differ from the cached ones.

use std::sync::OnceLock;

use sea_orm::sea_query::{Value, Values};
use sea_orm::{DatabaseBackend, Statement};

/// The SQL of one statement, per backend. Give each statement its own (a `static` in a generic
/// function is shared by all its instances: pass one in instead).
pub struct SqlOnce([OnceLock<String>; 3]);

impl SqlOnce {
    pub const fn new() -> Self {
        Self([OnceLock::new(), OnceLock::new(), OnceLock::new()])
    }

    /// The statement `build` makes, with its SQL as first built for `backend` and `values`
    /// bound, which must be what `build` would bind, in its order.
    pub fn statement(
        &self,
        backend: DatabaseBackend,
        values: Vec<Value>,
        build: impl FnOnce() -> Statement,
    ) -> Statement {
        let slot = match backend {
            DatabaseBackend::MySql => 0,
            DatabaseBackend::Postgres => 1,
            DatabaseBackend::Sqlite => 2,
        };
        let cell = &self.0[slot];
        let sql = match cell.get() {
            Some(sql) if !cfg!(debug_assertions) => sql,
            _ => {
                let built = build();
                let sql = cell.get_or_init(|| built.sql.clone());
                debug_assert_eq!(built.sql, *sql, "a statement's SQL changed between calls");
                debug_assert_eq!(
                    built.values.map(|v| v.0).unwrap_or_default(),
                    values,
                    "values bound out of the builder's order: {sql}"
                );
                sql
            }
        };
        Statement {
            sql: sql.clone(),
            values: Some(Values(values)),
            db_backend: backend,
        }
    }
}

impl Default for SqlOnce {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Expr, Query};

    use super::*;

    fn select(limit: u64) -> Statement {
        let query = Query::select()
            .expr(Expr::val(1))
            .and_where(Expr::val(2).lt(3))
            .limit(limit)
            .to_owned();
        DatabaseBackend::Postgres.build(&query)
    }

    #[test]
    fn later_calls_bind_new_values_to_the_first_sql() {
        let once = SqlOnce::new();
        let first = once.statement(
            DatabaseBackend::Postgres,
            vec![1.into(), 2.into(), 3.into(), 7u64.into()],
            || select(7),
        );
        let later = once.statement(
            DatabaseBackend::Postgres,
            vec![1.into(), 2.into(), 3.into(), 9u64.into()],
            || select(9),
        );
        assert_eq!(later.sql, first.sql);
        assert_eq!(later, select(9));
    }

    #[test]
    #[should_panic(expected = "values bound out of the builder's order")]
    fn debug_builds_refuse_values_out_of_order() {
        let once = SqlOnce::new();
        once.statement(
            DatabaseBackend::Postgres,
            vec![2.into(), 1.into(), 3.into(), 7u64.into()],
            || select(7),
        );
    }
}
