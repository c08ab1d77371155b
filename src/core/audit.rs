//! The audit trail: security events of an account, written in the transaction of the change
//! they describe (or on their own for refusals), readable by the account's owner.

use chrono::{DateTime, Utc};
use entity::audit_events;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};
use uuid::Uuid;

use crate::domain::Requester;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Signup,
    Verification,
    Login,
    RefreshReplay,
    PasswordReset,
    PasswordChange,
    Logout,
    SessionRevoked,
    Reauthentication,
    EmailChange,
    /// Kept without user, address, IP or session once the account is gone: a count only.
    AccountDeleted,
    /// An operator listed users (no user named) or read one user's account, sessions or
    /// activity.
    AdminRead,
    /// An operator disabled the account: its sessions ended, and it is answered like an
    /// unknown address.
    AdminDisable,
    /// An operator enabled the account again.
    AdminEnable,
    /// An operator ended every session of the account.
    AdminRevokeSessions,
    /// An operator deleted the account; kept, like `AccountDeleted`, naming no user.
    AdminDelete,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Verification => "verification",
            Self::Login => "login",
            Self::RefreshReplay => "refresh_replay",
            Self::PasswordReset => "password_reset",
            Self::PasswordChange => "password_change",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::Reauthentication => "reauthentication",
            Self::EmailChange => "email_change",
            Self::AccountDeleted => "account_deleted",
            Self::AdminRead => "admin_read",
            Self::AdminDisable => "admin_disable",
            Self::AdminEnable => "admin_enable",
            Self::AdminRevokeSessions => "admin_revoke_sessions",
            Self::AdminDelete => "admin_delete",
        }
    }
}

/// How it ended, as the account's owner reads it in their activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Sign-up: a code was sent.
    CodeSent,
    /// Sign-up for a verified address: an "account exists" notice was sent instead.
    AccountExists,
    /// Sign-up for a disabled account: nothing was sent (its answer is an unknown address's).
    AccountDisabled,
    WrongPassword,
    /// A replayed refresh token ended its session.
    SessionRevoked,
    /// This many other sessions were ended.
    Revoked(u64),
    /// A new sign-in took the place of this session, the user's least recently used one, at
    /// the cap of live sessions per user.
    SessionLimit,
}

impl Outcome {
    pub fn name(self) -> String {
        match self {
            Self::Success => "success".to_owned(),
            Self::Failure => "failure".to_owned(),
            Self::CodeSent => "code_sent".to_owned(),
            Self::AccountExists => "account_exists".to_owned(),
            Self::AccountDisabled => "account_disabled".to_owned(),
            Self::WrongPassword => "wrong_password".to_owned(),
            Self::SessionRevoked => "session_revoked".to_owned(),
            Self::Revoked(count) => format!("{count} revoked"),
            Self::SessionLimit => "session_limit".to_owned(),
        }
    }
}

/// One event to record. Named fields, so a user id cannot pass for a session id.
pub struct Entry<'a> {
    pub event: Event,
    pub outcome: Outcome,
    /// `None` when no account was involved; the row is written all the same, so such
    /// requests cost what the others cost.
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub requester: &'a Requester,
}

/// Records one event.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    insert(db, now, entry, None).await
}

/// Records an operator's action; `api_key_id` names the API key that took it (`None` on the
/// command line).
pub async fn record_admin<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    entry: Entry<'_>,
    api_key_id: Option<Uuid>,
) -> Result<(), DbErr> {
    insert(db, now, entry, api_key_id).await
}

async fn insert<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    entry: Entry<'_>,
    api_key_id: Option<Uuid>,
) -> Result<(), DbErr> {
    // Not read back: no RETURNING (nor, on MySQL, a SELECT of the new row).
    let row = audit_events::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(entry.user_id),
        event: Set(entry.event.name().to_owned()),
        outcome: Set(entry.outcome.name()),
        ip: Set(entry.requester.ip.clone()),
        user_agent: Set(entry.requester.user_agent.clone()),
        session_id: Set(entry.session_id),
        created_at: Set(now),
        api_key_id: Set(api_key_id),
    };
    audit_events::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// A position in a user's activity, newest first: the last event of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque to clients: base64url of `<microseconds>.<id>`.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}.{}", self.created_at.timestamp_micros(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(value: &str) -> Option<Self> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (micros, id) = raw.split_once('.')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// One page of the user's events, newest first, and the cursor of the next page if any.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    limit: u64,
    after: Option<Cursor>,
) -> Result<(Vec<audit_events::Model>, Option<Cursor>), DbErr> {
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let mut query = audit_events::Entity::find().filter(audit_events::Column::UserId.eq(user_id));
    if let Some(after) = after {
        query = query.filter(
            Condition::any()
                .add(audit_events::Column::CreatedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(audit_events::Column::CreatedAt.eq(after.created_at))
                        .add(audit_events::Column::Id.lt(after.id)),
                ),
        );
    }
    let mut events = query
        .order_by_desc(audit_events::Column::CreatedAt)
        .order_by_desc(audit_events::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = events.len() as u64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more.then(|| events.last()).flatten().map(|last| Cursor {
        created_at: last.created_at,
        id: last.id,
    });
    Ok((events, next))
}
