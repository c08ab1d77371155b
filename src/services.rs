//! Everything a use-case needs, built once at start-up and shared by every request.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::config::Config;
use crate::limits::{AddressLimits, IpLimits};
use crate::mail::OutboxSignal;
use crate::otp::CodeEngine;
use crate::passwords::Passwords;
use crate::timer::PreciseTimer;

pub struct Services {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub codes: CodeEngine,
    pub passwords: Passwords,
    pub ip_limits: IpLimits,
    pub metrics: crate::metrics::Metrics,
    pub address_limits: AddressLimits,
    /// Wakes the email worker after a transaction that enqueued an email commits.
    pub outbox: OutboxSignal,
    /// Ends the equal-time wait of the operations that must not reveal an account.
    pub timer: PreciseTimer,
}

/// A use-case's failure that is not an expected outcome.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The password-hashing queue is full: answer 503 and let the client retry.
    #[error(transparent)]
    Overloaded(#[from] crate::passwords::Overloaded),
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::passwords::HashError> for Error {
    fn from(error: crate::passwords::HashError) -> Self {
        match error {
            crate::passwords::HashError::Overloaded(overloaded) => Self::Overloaded(overloaded),
            crate::passwords::HashError::Failed(message) => Self::Other(anyhow::anyhow!(message)),
        }
    }
}
