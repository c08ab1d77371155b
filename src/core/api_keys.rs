//! API keys: made by an operator with a name and scopes, stored as their SHA-256 only, used
//! as `Authorization: Bearer cwk_…` by the app's backend and operators' tools, revoked by id.

use chrono::{DateTime, Utc};
use entity::api_keys;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use uuid::Uuid;

use crate::domain::{ApiKey, ApiKeyName, Scope};

/// A new key; the only moment it exists in clear.
pub struct CreatedKey {
    pub id: Uuid,
    pub key: ApiKey,
}

/// A key as an operator's list shows it.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a live API key is, and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl ApiKeyView {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// What revoking a key by id did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// It was revoked before; nothing changed.
    AlreadyRevoked,
    NotFound,
}

/// Stores a new key with `name` and `scopes` (each once, whatever the order given).
pub async fn create<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    name: &ApiKeyName,
    scopes: &[Scope],
) -> Result<CreatedKey, DbErr> {
    let key = ApiKey::generate();
    let id = Uuid::new_v4();
    api_keys::ActiveModel {
        id: Set(id),
        name: Set(name.as_str().to_owned()),
        key_hash: Set(key.hash().0),
        scopes: Set(scope_names(scopes)),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(CreatedKey { id, key })
}

/// Every key, revoked ones included, oldest first.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<ApiKeyRecord>, DbErr> {
    let rows = api_keys::Entity::find()
        .order_by_asc(api_keys::Column::CreatedAt)
        .order_by_asc(api_keys::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ApiKeyRecord {
            id: row.id,
            scopes: parse_scopes(&row.scopes),
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        })
        .collect())
}

/// Revokes the key `id`: it stops working at once. One conditional update, so two revocations
/// racing tell apart which one did it.
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    id: Uuid,
) -> Result<Revocation, DbErr> {
    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    if revoked == 1 {
        return Ok(Revocation::Revoked);
    }
    Ok(match api_keys::Entity::find_by_id(id).one(db).await? {
        Some(_) => Revocation::AlreadyRevoked,
        None => Revocation::NotFound,
    })
}

/// The live key `key` is, found by its SHA-256 on `reads`; `None` for an unknown or revoked
/// one. Its `last_used_at` is brought up to date on `writer`.
pub async fn authenticate(
    reads: &impl ConnectionTrait,
    writer: &impl ConnectionTrait,
    now: DateTime<Utc>,
    key: &ApiKey,
) -> Result<Option<ApiKeyView>, DbErr> {
    let Some(row) = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(key.hash().0))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(reads)
        .await?
    else {
        return Ok(None);
    };
    // Minute precision tells an operator whether a key is still in use, and spares a write
    // on most requests of a busy backend.
    let stale = row
        .last_used_at
        .is_none_or(|last| now - last > chrono::Duration::minutes(1));
    if stale {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(now))
            .filter(api_keys::Column::Id.eq(row.id))
            .exec(writer)
            .await?;
    }
    Ok(Some(ApiKeyView {
        id: row.id,
        scopes: parse_scopes(&row.scopes),
        name: row.name,
    }))
}

/// `introspect admin`: each scope once, in a fixed order.
fn scope_names(scopes: &[Scope]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
        .iter()
        .map(|scope| scope.name())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes a stored key has; a name this version does not know grants nothing.
fn parse_scopes(stored: &str) -> Vec<Scope> {
    stored.split_whitespace().filter_map(Scope::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_stored_once_each_in_order_and_unknown_ones_grant_nothing() {
        let stored = scope_names(&[Scope::Admin, Scope::Introspect, Scope::Admin]);

        assert_eq!(stored, "introspect admin");
        assert_eq!(parse_scopes(&stored), [Scope::Introspect, Scope::Admin]);
        assert_eq!(parse_scopes("admin  superuser"), [Scope::Admin]);
    }
}
