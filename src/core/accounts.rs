//! Looking up accounts by address, the same way on every path.

use entity::users;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

use crate::domain::EmailAddress;
use crate::infra::sql_once::SqlOnce;

pub async fn find_user<C: sea_orm::ConnectionTrait>(
    db: &C,
    email: &EmailAddress,
) -> Result<Option<users::Model>, sea_orm::DbErr> {
    // Every code request and sign-in runs it: its SQL is built once (see `SqlOnce`).
    static SQL: SqlOnce = SqlOnce::new();
    let backend = db.get_database_backend();
    let values = vec![email.as_str().into(), 1u64.into()];
    let statement = SQL.statement(backend, values, || {
        users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .limit(1)
            .build(backend)
    });
    users::Model::find_by_statement(statement).one(db).await
}

/// The enabled account with this address: its id, and whether its address is verified. A
/// disabled account is `None`, as an unknown address is. Read from the covering index
/// `users_email_lookup_idx` on `users (email, id, email_verified_at, disabled_at)` alone, so a hit costs what a miss
/// costs: the code checks that follow must not take longer for an existing account. SQLite's
/// planner prefers the unique `email` index (which reads the table row on a hit), hence its
/// `INDEXED BY`.
pub async fn find_account(
    db: &impl ConnectionTrait,
    email: &EmailAddress,
) -> Result<Option<(Uuid, bool)>, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Sqlite => {
            r#"SELECT "id", "email_verified_at", "disabled_at" FROM "users" INDEXED BY "users_email_lookup_idx" WHERE "email" = ?"#
        }
        DatabaseBackend::Postgres => {
            r#"SELECT "id", "email_verified_at", "disabled_at" FROM "users" WHERE "email" = $1"#
        }
        DatabaseBackend::MySql => {
            "SELECT `id`, `email_verified_at`, `disabled_at` FROM `users` WHERE `email` = ?"
        }
    };
    let statement = Statement::from_sql_and_values(backend, sql, [email.as_str().into()]);
    let Some(row) = db.query_one(statement).await? else {
        return Ok(None);
    };
    let verified_at: Option<chrono::DateTime<chrono::Utc>> =
        row.try_get("", "email_verified_at")?;
    let disabled_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get("", "disabled_at")?;
    if disabled_at.is_some() {
        return Ok(None);
    }
    Ok(Some((row.try_get("", "id")?, verified_at.is_some())))
}

/// An account as the layers above see it: no hash, no entity type.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    /// Whether a password is set (an account made by code sign-in has none).
    pub has_password: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub locale: String,
}

impl From<users::Model> for Account {
    fn from(user: users::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified_at.is_some(),
            has_password: user.password_hash.is_some(),
            created_at: user.created_at,
            locale: user.locale,
        }
    }
}

/// The account with this id, if it still exists.
pub async fn by_id<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
) -> Result<Option<Account>, sea_orm::DbErr> {
    Ok(users::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Account::from))
}

/// Replaces the user's password hash with `new`, an equivalent one (same password, current
/// parameters), unless the hash changed since it was read as `old`: a password changed
/// meanwhile is never overwritten with the previous one. `false` when it had changed.
pub async fn rehash_password<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    old: &str,
    new: String,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    let replaced = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(new))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::PasswordHash.eq(old))
        .exec(db)
        .await?;
    Ok(replaced.rows_affected == 1)
}
