//! The use-cases, one module per API tag. Each takes `Services` (everything a use-case needs,
//! built once at start-up and shared by every request) and returns a named outcome.

pub mod password;
pub mod signup;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::core::codes::CodeEngine;
use crate::core::limits::{AddressLimits, IpLimits};
use crate::core::mail::OutboxSignal;
use crate::core::passwords::Passwords;
use crate::infra::clock::Clock;
use crate::infra::timer::PreciseTimer;

pub struct Services {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub codes: CodeEngine,
    pub passwords: Passwords,
    pub ip_limits: IpLimits,
    pub metrics: crate::infra::metrics::Metrics,
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
    Overloaded(#[from] crate::core::passwords::Overloaded),
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::core::passwords::HashError> for Error {
    fn from(error: crate::core::passwords::HashError) -> Self {
        match error {
            crate::core::passwords::HashError::Overloaded(overloaded) => {
                Self::Overloaded(overloaded)
            }
            crate::core::passwords::HashError::Failed(message) => {
                Self::Other(anyhow::anyhow!(message))
            }
        }
    }
}
