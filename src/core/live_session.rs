//! The token check's read: the live session an access token names, joined with its user, in
//! one statement. Every bearer request runs it, so its SQL is built once per database backend
//! (sea-query would otherwise build its thirty-odd aliased columns on each request) and only
//! the values change.

use chrono::{DateTime, Utc};
use entity::{sessions, users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

use crate::core::Error;
use crate::core::tokens::{AccessClaims, Tokens};
use crate::infra::sql_once::SqlOnce;

/// A token codeward accepts now: its claims, its live session and the session's user.
pub struct LiveSession {
    pub session: sessions::Model,
    pub user: users::Model,
    pub claims: AccessClaims,
}

/// The session and user of `token` if it is an access token codeward accepts now: it verifies
/// (signature, `typ`, `iss`, `aud`, `exp`), and its session is still live and the user's, so
/// that ending a session ends its access tokens at once. One statement reads the session and
/// its user; reads only.
pub async fn verify_live<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    tokens: &Tokens,
    token: &str,
) -> Result<Option<LiveSession>, Error> {
    let Some(claims) = tokens.verify(now, token).await? else {
        return Ok(None);
    };
    let statement = statement(db.get_database_backend(), claims.sid, claims.sub, now);
    let Some(row) = db.query_one(statement).await? else {
        return Ok(None);
    };
    let session = sessions::Model::from_query_result(&row, PREFIX_SESSION)?;
    let Some(user) = users::Model::from_query_result_optional(&row, PREFIX_USER)? else {
        return Ok(None);
    };
    Ok(Some(LiveSession {
        session,
        user,
        claims,
    }))
}

/// How sea-orm's `find_also_related` prefixes the two models' columns.
const PREFIX_SESSION: &str = "A_";
const PREFIX_USER: &str = "B_";

/// The live session `session_id` of `user_id` at `now`, with its user, as a statement.
fn statement(
    backend: DatabaseBackend,
    session_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Statement {
    static SQL: SqlOnce = SqlOnce::new();
    // In the order `query` binds them.
    let values = vec![session_id.into(), user_id.into(), now.into(), 1u64.into()];
    SQL.statement(backend, values, || {
        query(session_id, user_id, now).build(backend)
    })
}

/// The query `statement` is the SQL of.
fn query(
    session_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sea_orm::SelectTwo<sessions::Entity, users::Entity> {
    sessions::Entity::find_by_id(session_id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .find_also_related(users::Entity)
        .limit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_statement_is_the_query_sea_orm_builds_for_every_backend_and_any_values() {
        for backend in [
            DatabaseBackend::Sqlite,
            DatabaseBackend::Postgres,
            DatabaseBackend::MySql,
        ] {
            // The first call builds the SQL from other values than the later ones.
            let _ = statement(backend, Uuid::new_v4(), Uuid::new_v4(), Utc::now());
            for _ in 0..3 {
                let (session_id, user_id) = (Uuid::new_v4(), Uuid::new_v4());
                let now = Utc::now() + chrono::Duration::seconds(rand::random_range(0..1_000_000));
                let built = query(session_id, user_id, now).build(backend);
                let cached = statement(backend, session_id, user_id, now);
                assert_eq!(cached.sql, built.sql, "{backend:?}");
                assert_eq!(cached.values, built.values, "{backend:?}");
                assert!(cached.sql.contains("\"A_id\"") || cached.sql.contains("`A_id`"));
            }
        }
    }
}
