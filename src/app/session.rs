//! Tag `session`: sign in, rotate tokens, list and revoke sessions.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::app::{AuthUser, Error, IssuedSession, Services};
use crate::core::accounts::{self, find_user};
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::limits::PasswordCheck;
use crate::core::sessions::{self, NewSession, RevokeReason, Rotation};
use crate::core::webhooks::Event as Webhook;
use crate::domain::{AuthMethod, EmailAddress, PasswordAttempt, RefreshToken, Requester};
use crate::infra::db;

/// What `login` can answer.
pub enum Login {
    SignedIn(IssuedSession),
    /// Unknown address, never-verified or disabled account, or wrong password: one answer for
    /// all.
    InvalidCredentials,
}

/// What `refresh` can answer.
pub enum Refresh {
    Rotated(IssuedSession),
    /// Unknown, expired, revoked or replayed (a replay also ended its session).
    InvalidToken,
}

/// What revoking one session can answer.
pub enum RevokeSession {
    Revoked,
    /// The user has no live session with this id.
    NotFound,
}

/// One signed-in device, as its owner sees it.
pub struct DeviceSession {
    pub id: Uuid,
    pub device_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// Whether this is the session asking.
    pub current: bool,
}

/// Signs in with email and password. Every refusal verifies one argon2 hash (a dummy where
/// there is none), so they all take the same time. The attempt takes its failure unit before
/// the hash is verified, so parallel guesses cannot all slip past the delay.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn login(
    services: &Services,
    email: &EmailAddress,
    password: &PasswordAttempt,
    device_name: Option<String>,
    requester: &Requester,
) -> Result<Login, Error> {
    let now = services.clock.now();
    let limits = &services.address_limits;
    let check = PasswordCheck::SignIn(email);
    take_password_attempt(services, now, check, "login").await?;
    // A disabled account is an unknown address: a dummy hash, the same answer.
    let user = find_user(&services.lookups, email)
        .await?
        .filter(|user| user.email_verified_at.is_some() && user.disabled_at.is_none());
    let stored = user.as_ref().and_then(|user| user.password_hash.as_deref());
    let matches = match services.passwords.verify(password.expose(), stored).await {
        Ok(matches) => matches,
        Err(error) => {
            // Nothing was verified (a full queue, say): the unit was not a failure.
            limits
                .give_back_password_attempt(&services.writer, check)
                .await?;
            return Err(error.into());
        }
    };
    let user_id = user.as_ref().map(|user| user.id);
    let Some(user) = user.filter(|_| matches) else {
        // The unit taken above stays: it counts this failure.
        // Recorded for unknown addresses too (without a user), so both cost the same.
        let entry = Entry {
            event: Event::Login,
            outcome: Outcome::Failure,
            user_id,
            session_id: None,
            requester,
        };
        let txn = services.transactions.begin_writing().await?;
        audit::record(&txn, now, entry).await?;
        txn.commit().await?;
        tracing::info!(outcome = "invalid_credentials", "login");
        return Ok(Login::InvalidCredentials);
    };
    // Hashed before the transaction opens: nothing waits for argon2 holding the write lock.
    let rehashed = rehash(services, &user, password).await;
    let txn = services.transactions.begin_writing().await?;
    limits.password_accepted(&txn, check).await?;
    if let Some((old, new)) = rehashed
        && accounts::rehash_password(&txn, user.id, &old, new).await?
    {
        tracing::info!(user_id = %user.id, "password rehashed with the current parameters");
    }
    let new = NewSession {
        user,
        device_name,
        method: AuthMethod::Password,
    };
    let session = sign_in(services, &txn, now, new, requester, Event::Login).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(user_id = %session.user.id, session_id = %session.session_id, outcome = "success", "login");
    Ok(Login::SignedIn(session))
}

/// The user's stored hash and a new one of the same password, when the stored one was made
/// with other argon2 parameters than the current ones: the right password was just given, the
/// only moment it can be rehashed. Hashed before any transaction opens. A full hashing queue
/// skips it (the sign-in still succeeds; the next one rehashes).
async fn rehash(
    services: &Services,
    user: &users::Model,
    password: &PasswordAttempt,
) -> Option<(String, String)> {
    let old = user
        .password_hash
        .clone()
        .filter(|old| services.passwords.needs_rehash(old))?;
    match services.passwords.hash(password.expose()).await {
        Ok(new) => Some((old, new)),
        Err(error) => {
            tracing::warn!(user_id = %user.id, %error, "password not rehashed; the next sign-in will");
            None
        }
    }
}

/// Takes the failure unit of a password check before the password is verified (see
/// `AddressLimits::take_password_attempt`); a refusal is logged as `operation`'s.
pub(super) async fn take_password_attempt(
    services: &Services,
    now: DateTime<Utc>,
    check: PasswordCheck<'_>,
    operation: &'static str,
) -> Result<(), Error> {
    // Committed before the password is verified: a crash or a parallel attempt never finds
    // the unit untaken. A refusal rolls back (it changed nothing but may have made the row).
    let txn = services.transactions.begin_writing().await?;
    services
        .address_limits
        .take_password_attempt(&txn, now, check)
        .await
        .inspect_err(|error| {
            if let Error::Limited(limited) = error {
                let retry_after = limited.retry_after;
                tracing::info!(outcome = "delayed", retry_after, "{operation}");
            }
        })?;
    Ok(txn.commit().await?)
}

/// Starts a session for `user` inside the caller's transaction and records it as `event`, and
/// as the webhook event `user.signed_in` (every new session is one: password or code sign-in
/// and sign-up verification; a re-authentication or a refresh is not).
pub(super) async fn sign_in<C: ConnectionTrait>(
    services: &Services,
    txn: &C,
    now: DateTime<Utc>,
    new: NewSession,
    requester: &Requester,
    event: Event,
) -> Result<IssuedSession, Error> {
    let (lifetimes, tokens) = (&services.sessions, &services.tokens);
    let session = sessions::start(txn, now, lifetimes, tokens, new, requester).await?;
    let entry = Entry {
        event,
        outcome: Outcome::Success,
        user_id: Some(session.user.id),
        session_id: Some(session.session_id),
        requester,
    };
    audit::record(txn, now, entry).await?;
    let user = &session.user;
    let signed_in = Webhook::user_signed_in(user.id, &user.email, session.session_id);
    services.webhooks.record(txn, now, signed_in).await?;
    Ok(session)
}

/// Swaps a refresh token for a new pair; `None` is a token that is not even well-formed.
pub async fn refresh(
    services: &Services,
    presented: Option<RefreshToken>,
    requester: &Requester,
) -> Result<Refresh, Error> {
    let Some(presented) = presented else {
        return Ok(Refresh::InvalidToken);
    };
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    let (lifetimes, tokens) = (&services.sessions, &services.tokens);
    let rotation = sessions::rotate(&txn, now, lifetimes, tokens, &presented, requester).await?;
    Ok(match rotation {
        Rotation::Rotated(session) => {
            txn.commit().await?;
            Refresh::Rotated(session)
        }
        Rotation::Replayed { revoked } => {
            if let Some((user_id, session_id)) = revoked {
                let event = Webhook::session_replay_detected(user_id, session_id);
                services.webhooks.record(&txn, now, event).await?;
            }
            txn.commit().await?;
            services.webhooks.signal().wake();
            Refresh::InvalidToken
        }
        Rotation::Refused => Refresh::InvalidToken,
    })
}

/// The live session an access token belongs to, if any.
pub async fn authenticate(services: &Services, token: &str) -> Result<Option<AuthUser>, Error> {
    let now = services.clock.now();
    sessions::authenticate(
        &services.lookups,
        &services.writer,
        now,
        &services.tokens,
        token,
    )
    .await
}

/// Ends the current session.
pub async fn logout(
    services: &Services,
    auth: &AuthUser,
    requester: &Requester,
) -> Result<(), Error> {
    let reason = RevokeReason::Logout;
    revoke(services, auth, auth.session_id, reason, requester).await?;
    tracing::info!(user_id = %auth.user_id, session_id = %auth.session_id, "logout");
    Ok(())
}

/// Ends one of the user's sessions (a lost phone, say).
pub async fn revoke_session(
    services: &Services,
    auth: &AuthUser,
    session_id: Uuid,
    requester: &Requester,
) -> Result<RevokeSession, Error> {
    let reason = RevokeReason::Revoked;
    if revoke(services, auth, session_id, reason, requester).await? {
        tracing::info!(user_id = %auth.user_id, revoked = %session_id, "session revoked");
        Ok(RevokeSession::Revoked)
    } else {
        Ok(RevokeSession::NotFound)
    }
}

/// Revokes one session of the signed-in user and records it; `false` if the user has no such
/// live session.
async fn revoke(
    services: &Services,
    auth: &AuthUser,
    session_id: Uuid,
    reason: RevokeReason,
    requester: &Requester,
) -> Result<bool, Error> {
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    let revoked = sessions::revoke_one(&txn, now, auth.user_id, session_id, reason).await?;
    if revoked {
        let event = match reason {
            RevokeReason::Logout => Event::Logout,
            _ => Event::SessionRevoked,
        };
        let entry = Entry {
            event,
            outcome: Outcome::Success,
            user_id: Some(auth.user_id),
            session_id: Some(session_id),
            requester,
        };
        audit::record(&txn, now, entry).await?;
    }
    txn.commit().await?;
    Ok(revoked)
}

/// Ends every session of the signed-in user but the current one, and records it.
pub async fn revoke_other_sessions(
    services: &Services,
    auth: &AuthUser,
    requester: &Requester,
) -> Result<u64, Error> {
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    let keep = Some(auth.session_id);
    let reason = RevokeReason::Revoked;
    let count = sessions::revoke_all_but(&txn, now, auth.user_id, keep, reason).await?;
    let entry = Entry {
        event: Event::SessionRevoked,
        outcome: Outcome::Revoked(count),
        user_id: Some(auth.user_id),
        session_id: keep,
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    tracing::info!(user_id = %auth.user_id, count, "other sessions revoked");
    Ok(count)
}

/// The user's live sessions, most recently used first, the current one marked.
pub async fn list_sessions(
    services: &Services,
    auth: &AuthUser,
) -> Result<Vec<DeviceSession>, Error> {
    let now = services.clock.now();
    let live = sessions::live(&services.reads, now, auth.user_id).await?;
    Ok(live
        .into_iter()
        .map(|s| DeviceSession {
            current: s.id == auth.session_id,
            id: s.id,
            device_name: s.device_name,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
        })
        .collect())
}
