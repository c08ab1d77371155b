//! Tag `admin`: an operator reads, disables, enables and deletes accounts and ends their
//! sessions, through an API key with the `admin` scope or `codeward users`; both call these
//! use-cases. Every action, reads included, is an audit event naming the operator.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityTrait};
use uuid::Uuid;

use crate::app::account::ActivityPage;
use crate::app::deletion::{DeletedBy, remove_with_notice};
use crate::app::session::DeviceSession;
use crate::app::{Account, Error, Services};
use crate::core::audit::{self, Cursor, Entry, Event, Outcome};
use crate::core::codes::CodeEngine;
use crate::core::directory::{self, UserCursor};
use crate::core::limits::AddressLimits;
use crate::core::sessions::{self, RevokeReason};
use crate::core::webhooks::{Event as Webhook, Webhooks};
use crate::domain::Requester;
use crate::infra::clock::Clock;
use crate::infra::db;

/// What the admin use-cases need: a part of `Services` that the command line builds without
/// a server (no signing keys, no hashing pool, no listener).
pub struct Admin<'a> {
    pub db: &'a DatabaseConnection,
    pub clock: &'a Clock,
    pub codes: &'a CodeEngine,
    pub address_limits: &'a AddressLimits,
    pub webhooks: &'a Webhooks,
}

impl<'a> Admin<'a> {
    pub fn of(services: &'a Services) -> Self {
        Self {
            db: &services.writer,
            clock: &services.clock,
            codes: &services.codes,
            address_limits: &services.address_limits,
            webhooks: &services.webhooks,
        }
    }
}

/// Who acts: an API key through the admin API, or an operator at the command line.
pub struct Operator {
    /// The API key; `None` on the command line.
    pub api_key_id: Option<Uuid>,
    /// The client of the admin API; on the command line no IP and the user agent
    /// `codeward-cli`, which is how its events are told apart.
    pub requester: Requester,
}

impl Operator {
    pub fn api_key(id: Uuid, requester: Requester) -> Self {
        Self {
            api_key_id: Some(id),
            requester,
        }
    }

    pub fn command_line() -> Self {
        Self {
            api_key_id: None,
            requester: Requester {
                user_agent: Some(COMMAND_LINE.to_owned()),
                ..Requester::default()
            },
        }
    }
}

/// The user agent the events of `codeward users` carry.
pub const COMMAND_LINE: &str = "codeward-cli";

/// What an operator's action on one account can answer.
pub enum ForUser<T> {
    Done(T),
    /// No account has this id.
    UnknownUser,
}

/// An account as an operator sees it.
#[derive(Clone, Debug)]
pub struct AdminUser {
    pub account: Account,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The latest sign-in among the sessions still kept (housekeeping removes ended ones).
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub active_sessions: u64,
}

/// A page of accounts, newest first, and where the next page starts.
pub struct UserPage {
    pub users: Vec<AdminUser>,
    pub next: Option<UserCursor>,
}

/// One page of accounts, newest first, whose address starts with `email_prefix` (already
/// trimmed and lowercased by the caller) when given.
#[tracing::instrument(skip_all, fields(api_key_id = operator.api_key_id.map(tracing::field::display)))]
pub async fn list_users(
    admin: &Admin<'_>,
    operator: &Operator,
    email_prefix: Option<&str>,
    limit: u64,
    after: Option<UserCursor>,
) -> Result<UserPage, Error> {
    let now = admin.clock.now();
    let (rows, next) = directory::list(admin.db, email_prefix, limit, after).await?;
    let users = with_activity(admin.db, now, rows).await?;
    record(
        admin.db,
        now,
        operator,
        Event::AdminRead,
        None,
        Outcome::Success,
    )
    .await?;
    Ok(UserPage { users, next })
}

/// One account.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn get_user(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<AdminUser>, Error> {
    let now = admin.clock.now();
    let found = read_user(admin.db, now, user_id).await?;
    recorded_read(
        admin.db,
        now,
        operator,
        found.as_ref().map(|user| user.account.id),
    )
    .await?;
    Ok(found.map_or(ForUser::UnknownUser, ForUser::Done))
}

/// Disables the account: its sessions and codes end at once, and from now on every public
/// operation answers it as an unknown address. Disabling a disabled account changes nothing
/// but ending whatever session raced in.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn disable_user(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<AdminUser>, Error> {
    let now = admin.clock.now();
    let txn = db::begin_write(admin.db).await?;
    if !directory::set_disabled(&txn, now, user_id, true).await? {
        return Ok(ForUser::UnknownUser);
    }
    let revoked = sessions::revoke_all_but(&txn, now, user_id, None, RevokeReason::Admin).await?;
    let codes = admin.codes.revoke_all(&txn, now, user_id).await?;
    let outcome = Outcome::Revoked(revoked);
    record(
        &txn,
        now,
        operator,
        Event::AdminDisable,
        Some(user_id),
        outcome,
    )
    .await?;
    emit(admin, &txn, now, user_id, |email| {
        Webhook::user_disabled(user_id, email, operator.api_key_id)
    })
    .await?;
    txn.commit().await?;
    admin.webhooks.signal().wake();
    tracing::info!(%user_id, sessions = revoked, codes, outcome = "disabled", "disable_user");
    done(admin, now, user_id).await
}

/// Records the webhook `event` makes of the account's address, in `txn`.
async fn emit(
    admin: &Admin<'_>,
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    user_id: Uuid,
    event: impl FnOnce(&str) -> Webhook,
) -> Result<(), Error> {
    if let Some(user) = users::Entity::find_by_id(user_id).one(txn).await? {
        admin.webhooks.record(txn, now, event(&user.email)).await?;
    }
    Ok(())
}

/// Enables a disabled account: it can sign in again (its ended sessions stay ended).
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn enable_user(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<AdminUser>, Error> {
    let now = admin.clock.now();
    let txn = db::begin_write(admin.db).await?;
    if !directory::set_disabled(&txn, now, user_id, false).await? {
        return Ok(ForUser::UnknownUser);
    }
    let success = Outcome::Success;
    record(
        &txn,
        now,
        operator,
        Event::AdminEnable,
        Some(user_id),
        success,
    )
    .await?;
    emit(admin, &txn, now, user_id, |email| {
        Webhook::user_enabled(user_id, email, operator.api_key_id)
    })
    .await?;
    txn.commit().await?;
    admin.webhooks.signal().wake();
    tracing::info!(%user_id, outcome = "enabled", "enable_user");
    done(admin, now, user_id).await
}

/// Deletes the account as `delete_account` does (every row naming it, the notice emailed);
/// the event kept for counts names the API key and nobody else.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn delete_user(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<()>, Error> {
    let now = admin.clock.now();
    let txn = db::begin_write(admin.db).await?;
    let Some(user) = users::Entity::find_by_id(user_id).one(&txn).await? else {
        return Ok(ForUser::UnknownUser);
    };
    let by = DeletedBy {
        event: Event::AdminDelete,
        api_key_id: operator.api_key_id,
        operation: "delete_user",
    };
    let (limits, webhooks) = (admin.address_limits, admin.webhooks);
    if !remove_with_notice(&txn, now, limits, webhooks, user, by).await? {
        return Ok(ForUser::UnknownUser);
    }
    txn.commit().await?;
    webhooks.signal().wake();
    Ok(ForUser::Done(()))
}

/// The account's live sessions, most recently used first (none is the caller's: `current`
/// is false).
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn list_user_sessions(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<Vec<DeviceSession>>, Error> {
    let now = admin.clock.now();
    let exists = users::Entity::find_by_id(user_id)
        .one(admin.db)
        .await?
        .is_some();
    recorded_read(admin.db, now, operator, exists.then_some(user_id)).await?;
    if !exists {
        return Ok(ForUser::UnknownUser);
    }
    let live = sessions::live(admin.db, now, user_id).await?;
    Ok(ForUser::Done(
        live.into_iter()
            .map(|s| DeviceSession {
                current: false,
                id: s.id,
                device_name: s.device_name,
                ip: s.ip,
                user_agent: s.user_agent,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
            })
            .collect(),
    ))
}

/// Ends every session of the account; its tokens stop working at once. How many it ended.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn revoke_user_sessions(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
) -> Result<ForUser<u64>, Error> {
    let now = admin.clock.now();
    let txn = db::begin_write(admin.db).await?;
    if users::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .is_none()
    {
        return Ok(ForUser::UnknownUser);
    }
    let revoked = sessions::revoke_all_but(&txn, now, user_id, None, RevokeReason::Admin).await?;
    let outcome = Outcome::Revoked(revoked);
    let event = Event::AdminRevokeSessions;
    record(&txn, now, operator, event, Some(user_id), outcome).await?;
    txn.commit().await?;
    tracing::info!(%user_id, sessions = revoked, "revoke_user_sessions");
    Ok(ForUser::Done(revoked))
}

/// One page of the account's security events, newest first, as its owner reads them.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn list_user_activity(
    admin: &Admin<'_>,
    operator: &Operator,
    user_id: Uuid,
    limit: u64,
    after: Option<Cursor>,
) -> Result<ForUser<ActivityPage>, Error> {
    let now = admin.clock.now();
    let exists = users::Entity::find_by_id(user_id)
        .one(admin.db)
        .await?
        .is_some();
    if !exists {
        recorded_read(admin.db, now, operator, None).await?;
        return Ok(ForUser::UnknownUser);
    }
    let (rows, next) = audit::list(admin.db, user_id, limit, after).await?;
    // Recorded after the page is read: the page shows what was there before this read.
    recorded_read(admin.db, now, operator, Some(user_id)).await?;
    Ok(ForUser::Done(ActivityPage::new(rows, next)))
}

/// The account as it is now, after an action on it (`UnknownUser` if it was deleted since).
async fn done(
    admin: &Admin<'_>,
    now: DateTime<Utc>,
    user_id: Uuid,
) -> Result<ForUser<AdminUser>, Error> {
    Ok(read_user(admin.db, now, user_id)
        .await?
        .map_or(ForUser::UnknownUser, ForUser::Done))
}

async fn read_user(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    user_id: Uuid,
) -> Result<Option<AdminUser>, Error> {
    let Some(user) = users::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(None);
    };
    Ok(with_activity(db, now, vec![user]).await?.pop())
}

async fn with_activity(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    rows: Vec<users::Model>,
) -> Result<Vec<AdminUser>, Error> {
    let ids: Vec<Uuid> = rows.iter().map(|user| user.id).collect();
    let activity = directory::activity_of(db, now, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|user| {
            let found = activity.get(&user.id).copied().unwrap_or_default();
            AdminUser {
                disabled_at: user.disabled_at,
                last_sign_in_at: found.last_sign_in_at,
                active_sessions: found.active_sessions,
                account: user.into(),
            }
        })
        .collect())
}

/// Records a read of the account `user_id` (`None`: no such account, a failure).
async fn recorded_read(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    operator: &Operator,
    user_id: Option<Uuid>,
) -> Result<(), Error> {
    let outcome = if user_id.is_some() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    record(db, now, operator, Event::AdminRead, user_id, outcome).await
}

async fn record<C: sea_orm::ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    operator: &Operator,
    event: Event,
    user_id: Option<Uuid>,
    outcome: Outcome,
) -> Result<(), Error> {
    let entry = Entry {
        event,
        outcome,
        user_id,
        session_id: None,
        requester: &operator.requester,
    };
    audit::record_admin(db, now, entry, operator.api_key_id).await?;
    Ok(())
}
