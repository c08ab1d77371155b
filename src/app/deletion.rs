//! Tag `account`, deletion: the signed-in user removes their account and everything naming it.

use entity::users;
use sea_orm::EntityTrait;

use crate::app::{AuthUser, Error, Services, require_recent_authentication};
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::deletion;
use crate::core::mail::{Email, Message, outbox};
use crate::core::webhooks::Event as Webhook;
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
    let operation = "delete_account";
    let now = services.clock.now();
    let txn = db::begin_write(&services.db).await?;
    let Some(user) = users::Entity::find_by_id(auth.user_id).one(&txn).await? else {
        return Ok(DeleteAccount::SignedOut);
    };
    let Some(removed) = deletion::remove_account(&txn, user.id, &user.email).await? else {
        return Ok(DeleteAccount::SignedOut);
    };
    let counters = match EmailAddress::parse(&user.email) {
        Ok(email) => {
            services
                .address_limits
                .forget(&txn, &email, user.id)
                .await?
        }
        Err(_) => 0,
    };
    let deleted = Webhook::user_deleted(user.id, &user.email, None);
    services.webhooks.record(&txn, now, deleted).await?;
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
    outbox::enqueue(&txn, notice, now).await?;
    let nobody = Requester::default();
    let entry = Entry {
        event: Event::AccountDeleted,
        outcome: Outcome::Success,
        user_id: None,
        session_id: None,
        requester: &nobody,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(
        sessions = removed.sessions,
        refresh_tokens = removed.refresh_tokens,
        codes = removed.codes,
        budgets = removed.budgets,
        audit_events = removed.audit_events,
        emails = removed.emails,
        counters,
        outcome = "deleted",
        "{operation}"
    );
    Ok(DeleteAccount::Deleted)
}
