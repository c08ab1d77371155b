//! Tag `account`, deletion: the signed-in user removes their account and everything naming it.
//! An operator's `delete_user` (tag `admin`) removes an account the same way, through
//! `remove_with_notice`.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{DatabaseTransaction, EntityTrait};
use uuid::Uuid;

use crate::app::{AuthUser, Error, Services, require_recent_authentication};
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::deletion;
use crate::core::limits::AddressLimits;
use crate::core::mail::{Email, Message, outbox};
use crate::core::webhooks::{Event as Webhook, Webhooks};
use crate::domain::{EmailAddress, Requester};
use crate::infra::db;

/// What `delete_account` can answer.
pub enum DeleteAccount {
    /// The account and every row naming it are gone; a notice is on its way.
    Deleted,
    /// The account is gone already (deleted between authentication and now).
    SignedOut,
}

/// Deletes the signed-in user's account in one transaction: the user, their sessions and
/// refresh tokens (every token dies at once), codes, budgets, the counters kept for their
/// address, their audit events and emails still addressed to them. What stays is one
/// `account_deleted` audit event naming nobody (no user, address, IP or session), for counts,
/// and the "account deleted" notice, which the outbox sends without the user row. Needs a
/// recent authentication.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id))]
pub async fn delete_account(services: &Services, auth: &AuthUser) -> Result<DeleteAccount, Error> {
    require_recent_authentication(services, auth)?;
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    let Some(user) = users::Entity::find_by_id(auth.user_id).one(&txn).await? else {
        return Ok(DeleteAccount::SignedOut);
    };
    let by = DeletedBy {
        event: Event::AccountDeleted,
        api_key_id: None,
        operation: "delete_account",
    };
    let (limits, webhooks) = (&services.address_limits, &services.webhooks);
    if !remove_with_notice(&txn, now, limits, webhooks, user, by).await? {
        return Ok(DeleteAccount::SignedOut);
    }
    txn.commit().await?;
    webhooks.signal().wake();
    Ok(DeleteAccount::Deleted)
}

/// Who deleted an account: the event kept for counts, the API key behind an operator's
/// deletion, and the operation's name in the log.
pub(super) struct DeletedBy {
    pub event: Event,
    pub api_key_id: Option<Uuid>,
    pub operation: &'static str,
}

/// Removes `user` and every row naming it inside `txn`, enqueues the "account deleted" notice
/// and records one event naming nobody (no user, address, IP or session; only the API key of
/// an operator's deletion). `false` when another request deleted the user first: the caller
/// then rolls back. The caller commits.
pub(super) async fn remove_with_notice(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    address_limits: &AddressLimits,
    webhooks: &Webhooks,
    user: users::Model,
    by: DeletedBy,
) -> Result<bool, Error> {
    let Some(removed) = deletion::remove_account(txn, user.id, &user.email).await? else {
        return Ok(false);
    };
    let counters = match EmailAddress::parse(&user.email) {
        Ok(email) => address_limits.forget(txn, &email, user.id).await?,
        Err(_) => 0,
    };
    let deleted = Webhook::user_deleted(user.id, &user.email, by.api_key_id);
    webhooks.record(txn, now, deleted).await?;
    let notice = Email {
        to: user.email,
        message: Message::AccountDeleted,
        locale: user.locale,
        context: serde_json::json!({
            "deleted_at": now.format("%Y-%m-%d %H:%M UTC").to_string(),
        }),
        code: None,
        expires_at: now + chrono::Duration::hours(24),
    };
    outbox::enqueue(txn, notice, now).await?;
    let nobody = Requester::default();
    let entry = Entry {
        event: by.event,
        outcome: Outcome::Success,
        user_id: None,
        session_id: None,
        requester: &nobody,
    };
    audit::record_admin(txn, now, entry, by.api_key_id).await?;
    tracing::info!(
        sessions = removed.sessions,
        refresh_tokens = removed.refresh_tokens,
        codes = removed.codes,
        budgets = removed.budgets,
        audit_events = removed.audit_events,
        emails = removed.emails,
        counters,
        outcome = "deleted",
        "{}",
        by.operation
    );
    Ok(true)
}
