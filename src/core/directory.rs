//! The accounts as an operator sees them: listed newest first a page at a time (keyset, never
//! OFFSET), with their live sessions counted, and disabled or enabled.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{sessions, users};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

/// A position in the user list, newest first: the last user of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl UserCursor {
    /// Opaque to clients: base64url of `<nanoseconds since the epoch>.<id>`. Nanoseconds, as
    /// SQLite keeps every digit the clock gave: a rounded instant would skip or repeat users
    /// created within one microsecond.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let nanos = self.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let raw = format!("{nanos}.{}", self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(value: &str) -> Option<Self> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (nanos, id) = raw.split_once('.')?;
        Some(Self {
            created_at: DateTime::from_timestamp_nanos(nanos.parse().ok()?),
            id: id.parse().ok()?,
        })
    }
}

/// What an operator reads of an account besides its row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Activity {
    /// The latest session's start: the last sign-in (by password, code or sign-up
    /// verification) of the sessions still kept.
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub active_sessions: u64,
}

/// One page of users, newest first (`created_at`, then `id`, both descending), whose address
/// starts with `email_prefix` when given, and the cursor of the next page if any. Each page
/// seeks through `users (created_at, id)` from the cursor, so page 1,000 costs what page 1
/// does.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    email_prefix: Option<&str>,
    limit: u64,
    after: Option<UserCursor>,
) -> Result<(Vec<users::Model>, Option<UserCursor>), DbErr> {
    let mut query = users::Entity::find();
    if let Some(prefix) = email_prefix.filter(|prefix| !prefix.is_empty()) {
        query = query.filter(users::Column::Email.like(starts_with(prefix)));
    }
    if let Some(after) = after {
        query = query.filter(
            Condition::any()
                .add(users::Column::CreatedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(users::Column::CreatedAt.eq(after.created_at))
                        .add(users::Column::Id.lt(after.id)),
                ),
        );
    }
    let mut rows = query
        .order_by_desc(users::Column::CreatedAt)
        .order_by_desc(users::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more.then(|| rows.last()).flatten().map(|last| UserCursor {
        created_at: last.created_at,
        id: last.id,
    });
    Ok((rows, next))
}

/// A LIKE pattern matching what starts with `prefix`, its own `%` and `_` taken literally.
/// `!` escapes: a backslash would need escaping again in MySQL's string literals.
fn starts_with(prefix: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('!')
}

/// The last sign-in and the count of live sessions of each of `user_ids`: two grouped
/// statements for a whole page, whatever its size.
pub async fn activity_of<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_ids: &[Uuid],
) -> Result<HashMap<Uuid, Activity>, DbErr> {
    let mut found: HashMap<Uuid, Activity> = HashMap::new();
    if user_ids.is_empty() {
        return Ok(found);
    }
    let last: Vec<(Uuid, Option<DateTime<Utc>>)> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::UserId)
        .column_as(
            Expr::col(sessions::Column::CreatedAt).max(),
            "last_sign_in_at",
        )
        .filter(sessions::Column::UserId.is_in(user_ids.iter().copied()))
        .group_by(sessions::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    for (user_id, at) in last {
        found.entry(user_id).or_default().last_sign_in_at = at;
    }
    let live: Vec<(Uuid, i64)> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::UserId)
        .column_as(Expr::col(sessions::Column::Id).count(), "active_sessions")
        .filter(sessions::Column::UserId.is_in(user_ids.iter().copied()))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .group_by(sessions::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    for (user_id, count) in live {
        found.entry(user_id).or_default().active_sessions = u64::try_from(count).unwrap_or(0);
    }
    Ok(found)
}

/// Sets or clears `users.disabled_at` of `user_id`, inside the caller's transaction; the
/// UPDATE also locks the row, which a concurrent sign-in locks before it starts a session
/// (see `sessions::start`). `false` when no such user exists. Disabling an account that is
/// disabled already keeps its first `disabled_at`.
pub async fn set_disabled<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_id: Uuid,
    disabled: bool,
) -> Result<bool, DbErr> {
    let value: sea_orm::sea_query::SimpleExpr = if disabled {
        Func::coalesce([
            Expr::col(users::Column::DisabledAt).into(),
            Expr::value(now),
        ])
        .into()
    } else {
        Expr::value(None::<DateTime<Utc>>)
    };
    let updated = users::Entity::update_many()
        .col_expr(users::Column::DisabledAt, value)
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}
