//! Sessions: one per signed-in device, with a short-lived access token and a refresh token
//! that rotates on every use. A rotated refresh token that comes back revokes its session.

use chrono::{DateTime, Utc};
use entity::{refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::config::Config;
use crate::core::Error;
use crate::core::accounts::Account;
use crate::core::audit::{self, Entry, Event, Outcome};
pub use crate::core::live_session::{LiveSession, verify_live};
use crate::core::tokens::{Claims, Tokens};
use crate::domain::{AccessToken, AuthMethod, RefreshToken, Requester};

/// A freshly issued pair of tokens; the only moment the tokens exist in clear.
pub struct IssuedSession {
    pub session_id: Uuid,
    pub access: AccessToken,
    pub refresh: RefreshToken,
    pub access_expires_in: i64,
    pub refresh_expires_in: i64,
    pub user: Account,
}

/// Who an access token belongs to, and when and how their session last authenticated.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The session's latest sign-in or re-authentication (a refresh does not change it).
    pub auth_time: DateTime<Utc>,
    /// The account as it was when the token was checked (read with the session, in one
    /// statement).
    pub account: Account,
}

impl AuthUser {
    /// Whether the session authenticated within `max_age` of `now`.
    pub fn authenticated_since(&self, now: DateTime<Utc>, max_age: chrono::Duration) -> bool {
        now - self.auth_time <= max_age
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    Logout,
    Revoked,
    Replay,
    PasswordChanged,
    /// A new sign-in past the cap of live sessions per user.
    SessionLimit,
    /// An operator disabled the account, or ended its sessions.
    Admin,
}

impl RevokeReason {
    fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Replay => "replay",
            Self::PasswordChanged => "password_changed",
            Self::SessionLimit => "session_limit",
            Self::Admin => "admin",
        }
    }
}

/// How long tokens and sessions live, and how many live sessions a user may have.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub access: chrono::Duration,
    pub refresh_idle: chrono::Duration,
    /// How long after its rotation a refresh token presented again still gets a new pair.
    pub refresh_reuse_grace: chrono::Duration,
    pub session: chrono::Duration,
    /// Live sessions per user; a new one past this revokes the least recently used.
    pub max_per_user: u64,
}

impl Lifetimes {
    pub fn from_config(config: &Config) -> Self {
        Self {
            access: config.access_token_ttl(),
            refresh_idle: config.refresh_token_idle(),
            refresh_reuse_grace: config.refresh_reuse_grace(),
            session: config.session_max(),
            max_per_user: config.max_sessions_per_user,
        }
    }

    /// When a token issued `now` expires: its own lifetime, never past its session's end.
    fn expiry(
        now: DateTime<Utc>,
        lifetime: chrono::Duration,
        session_end: DateTime<Utc>,
    ) -> DateTime<Utc> {
        (now + lifetime).min(session_end)
    }
}

/// What presenting a refresh token did.
pub enum Rotation {
    Rotated(IssuedSession),
    /// A used token came back: its session is revoked (commit to keep that). `revoked` names
    /// the user and the session when this replay ended a live session (a replay of a session
    /// already ended changes nothing).
    Replayed {
        revoked: Option<(Uuid, Uuid)>,
    },
    /// Unknown, expired or revoked: nothing changed.
    Refused,
}

/// Who a new session is for, from which device, and how they proved it.
pub struct NewSession {
    pub user: users::Model,
    pub device_name: Option<String>,
    pub method: AuthMethod,
}

/// Starts a session for `user` inside the caller's transaction. At the cap of live sessions
/// per user, the least recently used ones are revoked first (and recorded), so a user's
/// sessions cannot pile up without bound.
pub async fn start<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
    tokens: &Tokens,
    new: NewSession,
    requester: &Requester,
) -> Result<IssuedSession, Error> {
    let NewSession {
        user,
        device_name,
        method,
    } = new;
    let disabled = make_room(txn, now, user.id, lifetimes.max_per_user, requester).await?;
    let refresh = RefreshToken::generate();
    let expires_at = now + lifetimes.session;
    let refresh_expires_at = Lifetimes::expiry(now, lifetimes.refresh_idle, expires_at);
    let access_expires_at = Lifetimes::expiry(now, lifetimes.access, expires_at);
    let session_id = Uuid::new_v4();
    sessions::ActiveModel {
        id: Set(session_id),
        user_id: Set(user.id),
        device_name: Set(device_name),
        ip: Set(requester.ip.clone()),
        user_agent: Set(requester.user_agent.clone()),
        refresh_expires_at: Set(refresh_expires_at),
        expires_at: Set(expires_at),
        created_at: Set(now),
        last_used_at: Set(now),
        auth_time: Set(now),
        auth_method: Set(method.amr().to_owned()),
        // A sign-in that raced an operator's `disable` (which locks the same row) gets a
        // session that is dead from birth: its tokens are refused like a revoked session's.
        revoked_at: Set(disabled.then_some(now)),
        revoked_reason: Set(disabled.then(|| RevokeReason::Admin.name().to_owned())),
    }
    .insert(txn)
    .await?;
    insert_refresh_token(txn, now, &refresh, session_id).await?;
    let access = tokens
        .issue(Claims {
            user_id: user.id,
            session_id,
            issued_at: now,
            expires_at: access_expires_at,
            auth_time: now,
            amr: method.amr(),
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
        })
        .await?;
    Ok(IssuedSession {
        session_id,
        access,
        refresh,
        access_expires_in: (access_expires_at - now).num_seconds(),
        refresh_expires_in: (refresh_expires_at - now).num_seconds(),
        user: user.into(),
    })
}

/// Revokes the user's least recently used live sessions until one more fits under `cap`,
/// each recorded in the user's activity. The user's row is locked first, so two sign-ins of
/// one user take turns here: each then counts the other's session, and the cap holds exactly
/// (on SQLite the caller's write transaction already runs alone, and no lock is written).
/// `true` when the locked row says the account is disabled (or gone).
async fn make_room<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    user_id: Uuid,
    cap: u64,
    requester: &Requester,
) -> Result<bool, DbErr> {
    let disabled = users::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .is_none_or(|user| user.disabled_at.is_some());
    // At most the cap plus the few a lowered setting leaves over, through the user's index.
    let live: Vec<Uuid> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .order_by_desc(sessions::Column::LastUsedAt)
        .order_by_desc(sessions::Column::CreatedAt)
        .into_tuple()
        .all(txn)
        .await?;
    let keep = usize::try_from(cap.saturating_sub(1)).unwrap_or(usize::MAX);
    for &session_id in live.iter().skip(keep) {
        let condition = sessions::Column::Id.eq(session_id);
        if revoke_where(txn, now, RevokeReason::SessionLimit, condition).await? == 1 {
            let entry = Entry {
                event: Event::SessionRevoked,
                outcome: Outcome::SessionLimit,
                user_id: Some(user_id),
                session_id: Some(session_id),
                requester,
            };
            audit::record(txn, now, entry).await?;
            tracing::info!(%user_id, %session_id, "session limit: least recently used session revoked");
        }
    }
    Ok(disabled)
}

async fn insert_refresh_token<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    refresh: &RefreshToken,
    session_id: Uuid,
) -> Result<(), DbErr> {
    refresh_tokens::ActiveModel {
        token_hash: Set(refresh.hash().0),
        session_id: Set(session_id),
        created_at: Set(now),
        used_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Rotates a refresh token inside the caller's transaction: the presented one is used up
/// atomically and a new pair is issued. A token that was already rotated gets a new pair too
/// while it is within the reuse grace of its rotation (two requests racing from one app, or an
/// answer lost on a mobile network, must not sign the user out); later it is a replay, which
/// revokes its session (the thief and the owner both lose it) and is recorded.
pub async fn rotate(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
    tokens: &Tokens,
    presented: &RefreshToken,
    requester: &Requester,
) -> Result<Rotation, Error> {
    let hash = presented.hash().0;
    let rotated = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::TokenHash.eq(hash.as_str()))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    let Some(token) = refresh_tokens::Entity::find_by_id(hash).one(txn).await? else {
        return Ok(Rotation::Refused);
    };
    let within_grace = token.used_at.is_some_and(|used_at| {
        lifetimes.refresh_reuse_grace > chrono::Duration::zero()
            && now - used_at <= lifetimes.refresh_reuse_grace
    });
    if !rotated && !within_grace {
        let revoked = revoke_replayed(txn, now, token.session_id, requester).await?;
        return Ok(Rotation::Replayed { revoked });
    }
    let Some(session) = sessions::Entity::find_by_id(token.session_id)
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .one(txn)
        .await?
    else {
        return Ok(Rotation::Refused);
    };
    let Some(user) = users::Entity::find_by_id(session.user_id)
        .filter(users::Column::DisabledAt.is_null())
        .one(txn)
        .await?
    else {
        return Ok(Rotation::Refused);
    };
    let refresh = RefreshToken::generate();
    let access_expires_at = Lifetimes::expiry(now, lifetimes.access, session.expires_at);
    let refresh_expires_at = Lifetimes::expiry(now, lifetimes.refresh_idle, session.expires_at);
    // The previous access token is left to expire: refreshing does not end it.
    sessions::Entity::update_many()
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
        .exec(txn)
        .await?;
    insert_refresh_token(txn, now, &refresh, session.id).await?;
    let access = tokens
        .issue(Claims {
            user_id: user.id,
            session_id: session.id,
            issued_at: now,
            expires_at: access_expires_at,
            auth_time: session.auth_time,
            amr: AuthMethod::from_amr(&session.auth_method)
                .unwrap_or(AuthMethod::Password)
                .amr(),
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
        })
        .await?;
    Ok(Rotation::Rotated(IssuedSession {
        session_id: session.id,
        access,
        refresh,
        access_expires_in: (access_expires_at - now).num_seconds(),
        refresh_expires_in: (refresh_expires_at - now).num_seconds(),
        user: user.into(),
    }))
}

/// Re-authenticates the live session `session_id` of `user_id` in place, inside the caller's
/// transaction: `auth_time` becomes `now` and `auth_method` `method`, in one conditional
/// UPDATE on a live session, and a rotated pair is issued. The session's unused refresh
/// tokens are used up as a refresh uses its token (within the reuse grace they still get a
/// pair, later they are a replay). `None` when the session ended meanwhile.
#[allow(clippy::too_many_arguments)]
pub async fn reauthenticate<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
    tokens: &Tokens,
    user_id: Uuid,
    session_id: Uuid,
    method: AuthMethod,
    requester: &Requester,
) -> Result<Option<IssuedSession>, Error> {
    let live = sea_orm::Condition::all()
        .add(sessions::Column::Id.eq(session_id))
        .add(sessions::Column::UserId.eq(user_id))
        .add(sessions::Column::RevokedAt.is_null())
        .add(sessions::Column::ExpiresAt.gt(now));
    let Some(session) = sessions::Entity::find()
        .filter(live.clone())
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    // `expires_at` never changes, so the expiries computed from it hold for the update.
    let access_expires_at = Lifetimes::expiry(now, lifetimes.access, session.expires_at);
    let refresh_expires_at = Lifetimes::expiry(now, lifetimes.refresh_idle, session.expires_at);
    let renewed = sessions::Entity::update_many()
        .col_expr(sessions::Column::AuthTime, Expr::value(now))
        .col_expr(sessions::Column::AuthMethod, Expr::value(method.amr()))
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
        .filter(live)
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if !renewed {
        return Ok(None);
    }
    let Some(user) = users::Entity::find_by_id(user_id).one(txn).await? else {
        return Ok(None);
    };
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::SessionId.eq(session_id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    let refresh = RefreshToken::generate();
    insert_refresh_token(txn, now, &refresh, session_id).await?;
    let access = tokens
        .issue(Claims {
            user_id,
            session_id,
            issued_at: now,
            expires_at: access_expires_at,
            auth_time: now,
            amr: method.amr(),
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
        })
        .await?;
    Ok(Some(IssuedSession {
        session_id,
        access,
        refresh,
        access_expires_in: (access_expires_at - now).num_seconds(),
        refresh_expires_in: (refresh_expires_at - now).num_seconds(),
        user: user.into(),
    }))
}

/// A used refresh token came back: its session ends, and the owner can see it in the activity.
async fn revoke_replayed(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    session_id: Uuid,
    requester: &Requester,
) -> Result<Option<(Uuid, Uuid)>, DbErr> {
    let owner = sessions::Entity::find_by_id(session_id)
        .one(txn)
        .await?
        .map(|session| session.user_id);
    let revoked = revoke_where(
        txn,
        now,
        RevokeReason::Replay,
        sessions::Column::Id.eq(session_id),
    )
    .await?;
    if revoked > 0 {
        let entry = Entry {
            event: Event::RefreshReplay,
            outcome: Outcome::SessionRevoked,
            user_id: owner,
            session_id: Some(session_id),
            requester,
        };
        audit::record(txn, now, entry).await?;
        tracing::warn!(%session_id, ip = requester.ip.as_deref(), "refresh token replayed: session revoked");
        return Ok(owner.map(|user_id| (user_id, session_id)));
    }
    Ok(None)
}

/// Who an access token belongs to, if it is one codeward accepts now (`verify_live`), and
/// the session's `last_used_at` brought up to date: read on `reads`, written on `writer`.
pub async fn authenticate(
    reads: &impl ConnectionTrait,
    writer: &impl ConnectionTrait,
    now: DateTime<Utc>,
    tokens: &Tokens,
    token: &str,
) -> Result<Option<AuthUser>, Error> {
    let Some(LiveSession { session, user, .. }) = verify_live(reads, now, tokens, token).await?
    else {
        return Ok(None);
    };
    // `last_used_at` is for people reading their session list: minute precision is plenty and
    // spares a write on most requests.
    if now - session.last_used_at > chrono::Duration::minutes(1) {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(session.id))
            .exec(writer)
            .await?;
    }
    Ok(Some(AuthUser {
        user_id: session.user_id,
        session_id: session.id,
        auth_time: session.auth_time,
        account: Account::from(user),
    }))
}

/// The user's live sessions, most recently used first.
pub async fn live<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_id: Uuid,
) -> Result<Vec<sessions::Model>, DbErr> {
    sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .order_by_desc(sessions::Column::LastUsedAt)
        .order_by_desc(sessions::Column::CreatedAt)
        .all(db)
        .await
}

/// The name a notice gives the device of a session: the one the client gave, else its
/// user agent.
pub async fn device<C: ConnectionTrait>(db: &C, session_id: Uuid) -> Result<Option<String>, DbErr> {
    let session = sessions::Entity::find_by_id(session_id).one(db).await?;
    Ok(session.and_then(|s| s.device_name.or(s.user_agent)))
}

/// Revokes the user's session `session_id`; `false` if the user has no such live session.
pub async fn revoke_one<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    auth_user_id: Uuid,
    session_id: Uuid,
    reason: RevokeReason,
) -> Result<bool, DbErr> {
    let condition = sea_orm::Condition::all()
        .add(sessions::Column::Id.eq(session_id))
        .add(sessions::Column::UserId.eq(auth_user_id));
    Ok(revoke_where(db, now, reason, condition).await? == 1)
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
