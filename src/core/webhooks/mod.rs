//! Webhooks: events about users recorded in the transaction of the change they report, and
//! delivered at least once to `CODEWARD_WEBHOOK_URL`, signed as the Standard Webhooks
//! specification says, in order of creation per user, by the generic queue's worker.
//!
//! A use-case (or the admin API) records an event with
//! `services.webhooks.record(&txn, now, Event::user_disabled(..))`. When no URL is configured
//! nothing is recorded: events nobody will receive would only grow the table.

pub mod event;
pub mod outbox;
pub mod signature;
pub mod worker;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

pub use event::{Event, EventType};

use crate::core::queue::Signal;

/// Records events when webhooks are configured; cheap to clone.
#[derive(Clone, Default)]
pub struct Webhooks {
    enabled: bool,
    signal: Signal,
}

impl Webhooks {
    /// Webhooks that record events (`enabled`, a URL is configured) or ignore them.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            signal: Signal::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records `event` inside the caller's transaction, so the change and its event are
    /// committed together or not at all; does nothing when webhooks are off. Wake the worker
    /// (`signal().wake()`) once the transaction has committed.
    pub async fn record<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        event: Event,
    ) -> Result<(), DbErr> {
        if self.enabled {
            outbox::insert(txn, now, &event).await?;
        }
        Ok(())
    }

    /// Wakes this instance's delivery worker.
    pub fn signal(&self) -> &Signal {
        &self.signal
    }
}

/// Records `event` inside the caller's transaction whatever the configuration: for callers
/// that decided themselves (prefer `Webhooks::record`, which knows whether a URL is set).
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    event: Event,
) -> Result<(), DbErr> {
    outbox::insert(txn, now, &event).await.map(|_| ())
}
