//! Sessions: one per signed-in device, with a short-lived access token and a refresh token
//! that rotates on every use. A rotated refresh token that comes back revokes its session.

use chrono::{DateTime, Utc};
use entity::{refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use uuid::Uuid;

use crate::app::{Error, Services};
use crate::core::audit::{self, Event};
use crate::core::codes::Requester;
use crate::domain::{AccessToken, RefreshToken};
use crate::infra::db;

/// A freshly issued pair of tokens; the only moment the tokens exist in clear.
pub struct IssuedSession {
    pub session_id: Uuid,
    pub access: AccessToken,
    pub refresh: RefreshToken,
    pub access_expires_in: i64,
    pub refresh_expires_in: i64,
    pub user: users::Model,
}

/// Who an access token belongs to.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    Logout,
    Revoked,
    Replay,
    PasswordChanged,
}

impl RevokeReason {
    fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Replay => "replay",
            Self::PasswordChanged => "password_changed",
        }
    }
}

fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// Starts a session for `user` inside the caller's transaction.
pub async fn start<C: ConnectionTrait>(
    services: &Services,
    txn: &C,
    now: DateTime<Utc>,
    user: users::Model,
    device_name: Option<String>,
    requester: &Requester,
) -> Result<IssuedSession, DbErr> {
    let config = &services.config;
    let access = AccessToken::generate();
    let refresh = RefreshToken::generate();
    let expires_at = now + seconds(config.session_max_secs);
    let refresh_expires_at = (now + seconds(config.refresh_token_idle_secs)).min(expires_at);
    let access_expires_at = (now + seconds(config.access_token_ttl_secs)).min(expires_at);
    let session_id = Uuid::new_v4();
    sessions::ActiveModel {
        id: Set(session_id),
        user_id: Set(user.id),
        device_name: Set(device_name),
        ip: Set(requester.ip.clone()),
        user_agent: Set(requester.user_agent.clone()),
        access_hash: Set(access.hash().0),
        access_expires_at: Set(access_expires_at),
        refresh_expires_at: Set(refresh_expires_at),
        expires_at: Set(expires_at),
        created_at: Set(now),
        last_used_at: Set(now),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(txn)
    .await?;
    refresh_tokens::ActiveModel {
        token_hash: Set(refresh.hash().0),
        session_id: Set(session_id),
        created_at: Set(now),
        used_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(IssuedSession {
        session_id,
        access,
        refresh,
        access_expires_in: (access_expires_at - now).num_seconds(),
        refresh_expires_in: (refresh_expires_at - now).num_seconds(),
        user,
    })
}

/// Rotates a refresh token: the presented one is used up atomically and a new pair is issued.
/// `None` for an unknown, expired or revoked token; a token that was already rotated is a
/// replay, which also revokes its session (the thief and the owner both lose it).
pub async fn refresh(
    services: &Services,
    presented: Option<RefreshToken>,
    requester: &Requester,
) -> Result<Option<IssuedSession>, Error> {
    let Some(presented) = presented else {
        return Ok(None);
    };
    let now = services.clock.now();
    let hash = presented.hash().0;
    let txn = db::begin_write(&services.db).await?;
    let rotated = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::TokenHash.eq(hash.as_str()))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    let Some(token) = refresh_tokens::Entity::find_by_id(hash).one(&txn).await? else {
        return Ok(None);
    };
    if !rotated {
        let owner = sessions::Entity::find_by_id(token.session_id)
            .one(&txn)
            .await?
            .map(|session| session.user_id);
        let revoked = revoke_where(
            &txn,
            now,
            RevokeReason::Replay,
            sessions::Column::Id.eq(token.session_id),
        )
        .await?;
        if revoked > 0 {
            let session_id = Some(token.session_id);
            audit::record(
                &txn,
                now,
                owner,
                Event::RefreshReplay,
                "session_revoked",
                requester,
                session_id,
            )
            .await?;
        }
        txn.commit().await?;
        if revoked > 0 {
            tracing::warn!(session_id = %token.session_id, ip = requester.ip.as_deref(), "refresh token replayed: session revoked");
        }
        return Ok(None);
    }
    let Some(session) = sessions::Entity::find_by_id(token.session_id)
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = users::Entity::find_by_id(session.user_id).one(&txn).await? else {
        return Ok(None);
    };
    let config = &services.config;
    let access = AccessToken::generate();
    let refresh = RefreshToken::generate();
    let access_expires_at = (now + seconds(config.access_token_ttl_secs)).min(session.expires_at);
    let refresh_expires_at =
        (now + seconds(config.refresh_token_idle_secs)).min(session.expires_at);
    sessions::Entity::update_many()
        .col_expr(sessions::Column::AccessHash, Expr::value(access.hash().0))
        .col_expr(
            sessions::Column::AccessExpiresAt,
            Expr::value(access_expires_at),
        )
        .col_expr(
            sessions::Column::RefreshExpiresAt,
            Expr::value(refresh_expires_at),
        )
        .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
        .col_expr(sessions::Column::Ip, Expr::value(requester.ip.clone()))
        .col_expr(
            sessions::Column::UserAgent,
            Expr::value(requester.user_agent.clone()),
        )
        .filter(sessions::Column::Id.eq(session.id))
        .exec(&txn)
        .await?;
    refresh_tokens::ActiveModel {
        token_hash: Set(refresh.hash().0),
        session_id: Set(session.id),
        created_at: Set(now),
        used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(IssuedSession {
        session_id: session.id,
        access,
        refresh,
        access_expires_in: (access_expires_at - now).num_seconds(),
        refresh_expires_in: (refresh_expires_at - now).num_seconds(),
        user,
    }))
}

/// The live session an access token belongs to, if any.
pub async fn authenticate(
    services: &Services,
    token: &AccessToken,
) -> Result<Option<AuthUser>, DbErr> {
    let now = services.clock.now();
    let Some(session) = sessions::Entity::find()
        .filter(sessions::Column::AccessHash.eq(token.hash().0))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::AccessExpiresAt.gt(now))
        .one(&services.db)
        .await?
    else {
        return Ok(None);
    };
    // `last_used_at` is for people reading their session list: minute precision is plenty and
    // spares a write on most requests.
    if now - session.last_used_at > chrono::Duration::minutes(1) {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(session.id))
            .exec(&services.db)
            .await?;
    }
    Ok(Some(AuthUser {
        user_id: session.user_id,
        session_id: session.id,
    }))
}

/// The user's live sessions, most recently used first.
pub async fn list(services: &Services, user_id: Uuid) -> Result<Vec<sessions::Model>, DbErr> {
    let now = services.clock.now();
    sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .order_by_desc(sessions::Column::LastUsedAt)
        .order_by_desc(sessions::Column::CreatedAt)
        .all(&services.db)
        .await
}

/// Revokes one session of the signed-in user (its own on logout) and records it; `false` if
/// the user has no such live session.
pub async fn revoke(
    services: &Services,
    auth: &AuthUser,
    session_id: Uuid,
    reason: RevokeReason,
    requester: &Requester,
) -> Result<bool, DbErr> {
    let now = services.clock.now();
    let condition = sea_orm::Condition::all()
        .add(sessions::Column::Id.eq(session_id))
        .add(sessions::Column::UserId.eq(auth.user_id));
    let txn = db::begin_write(&services.db).await?;
    let revoked = revoke_where(&txn, now, reason, condition).await? == 1;
    if revoked {
        let event = match reason {
            RevokeReason::Logout => Event::Logout,
            _ => Event::SessionRevoked,
        };
        audit::record(
            &txn,
            now,
            Some(auth.user_id),
            event,
            "success",
            requester,
            Some(session_id),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(revoked)
}

/// Revokes every session of the signed-in user but the current one, and records it.
pub async fn revoke_others(
    services: &Services,
    auth: &AuthUser,
    requester: &Requester,
) -> Result<u64, DbErr> {
    let now = services.clock.now();
    let txn = db::begin_write(&services.db).await?;
    let keep = Some(auth.session_id);
    let count = revoke_all_but(&txn, now, auth.user_id, keep, RevokeReason::Revoked).await?;
    let outcome = format!("{count} revoked");
    audit::record(
        &txn,
        now,
        Some(auth.user_id),
        Event::SessionRevoked,
        &outcome,
        requester,
        keep,
    )
    .await?;
    txn.commit().await?;
    Ok(count)
}

/// Revokes every session of the user except `keep` (all of them when `keep` is `None`).
pub async fn revoke_all_but<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<u64, DbErr> {
    let mut condition = sea_orm::Condition::all().add(sessions::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        condition = condition.add(sessions::Column::Id.ne(keep));
    }
    revoke_where(db, now, reason, condition).await
}

async fn revoke_where<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    reason: RevokeReason,
    condition: impl sea_orm::sea_query::IntoCondition,
) -> Result<u64, DbErr> {
    let result = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(sessions::Column::RevokedReason, Expr::value(reason.name()))
        .filter(condition)
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Loads the signed-in user.
pub async fn user(services: &Services, auth: &AuthUser) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find_by_id(auth.user_id)
        .one(&services.db)
        .await
}
