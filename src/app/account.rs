//! Tag `account`: the signed-in user's own account and security activity.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::{Account, AuthUser, Error, Services};
use crate::core::audit::{self, Cursor};

/// One security event, as its owner reads it.
pub struct ActivityEvent {
    pub id: Uuid,
    pub event: String,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<Uuid>,
    /// The API key behind an operator's action; `None` for every other event.
    pub api_key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A page of events, newest first, and where the next page starts.
pub struct ActivityPage {
    pub events: Vec<ActivityEvent>,
    pub next: Option<Cursor>,
}

/// The signed-in user's account, as the token check read it with the session.
pub fn me(auth: &AuthUser) -> Account {
    auth.account.clone()
}

/// One page of the user's events, newest first.
pub async fn activity(
    services: &Services,
    auth: &AuthUser,
    limit: u64,
    after: Option<Cursor>,
) -> Result<ActivityPage, Error> {
    let (rows, next) = audit::list(&services.reads, auth.user_id, limit, after).await?;
    Ok(ActivityPage::new(rows, next))
}

impl ActivityPage {
    /// The page `audit::list` read, as its readers see it.
    pub(super) fn new(rows: Vec<entity::audit_events::Model>, next: Option<Cursor>) -> Self {
        let events = rows
            .into_iter()
            .map(|e| ActivityEvent {
                id: e.id,
                event: e.event,
                outcome: e.outcome,
                ip: e.ip,
                user_agent: e.user_agent,
                session_id: e.session_id,
                api_key_id: e.api_key_id,
                created_at: e.created_at,
            })
            .collect();
        Self { events, next }
    }
}
