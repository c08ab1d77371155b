//! The use-cases, one module per API tag. Each takes `Services` (everything a use-case needs,
//! built once at start-up and shared by every request) and returns a named outcome; what can
//! stop any of them (a limit, a full hashing queue, a failure) is the one `Error`.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod backend;
mod code_request;
pub mod deletion;
pub mod email_change;
pub mod keyset;
pub mod login_code;
pub mod ops;
pub mod password;
pub mod reauth;
pub mod session;
pub mod signup;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::core::codes::CodeEngine;
use crate::core::limits::{AddressLimits, IpLimits};
use crate::core::mail::OutboxSignal;
use crate::core::passwords::Passwords;
use crate::core::sessions::Lifetimes;
use crate::core::tokens::Tokens;
use crate::core::webhooks::Webhooks;
use crate::infra::clock::Clock;
use crate::infra::lookups::Lookups;
use crate::infra::metrics::Metrics;
use crate::infra::timer::PreciseTimer;
use crate::infra::writes::Transactions;

pub use crate::core::Error;
pub use crate::core::accounts::Account;
pub use crate::core::api_keys::ApiKeyView;
pub use crate::core::sessions::{AuthUser, IssuedSession};

/// Refuses with `Error::ReauthenticationRequired` unless the caller's session signed in or
/// re-authenticated within `CODEWARD_REAUTH_MAX_AGE_SECS`: the check of every operation that
/// needs a recent authentication.
pub fn require_recent_authentication(services: &Services, auth: &AuthUser) -> Result<(), Error> {
    let now = services.clock.now();
    if auth.authenticated_since(now, services.config.reauth_max_age()) {
        Ok(())
    } else {
        Err(Error::ReauthenticationRequired)
    }
}

pub struct Services {
    /// Reads, on a pool (on SQLite, one that refuses to write: see `db::Connections`).
    pub reads: DatabaseConnection,
    /// The point lookups of the busiest operations (an account by its address before a code
    /// attempt or a password check, an access token's session, an API key): in place on a
    /// SQLite file (see `infra::lookups`), else on `reads`.
    pub lookups: Lookups,
    /// Every write, transaction or single statement: on SQLite one connection the writes of
    /// this process take turns on, in order.
    pub writer: DatabaseConnection,
    /// The short write transactions of a code attempt or request and of a password sign-in
    /// begin here (on a SQLite file they run in place; see `infra::writes`).
    pub transactions: Transactions,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub codes: CodeEngine,
    pub passwords: Passwords,
    pub sessions: Lifetimes,
    /// Signs and checks access tokens with the signing keys shared by every instance.
    pub tokens: Tokens,
    pub ip_limits: IpLimits,
    pub metrics: Metrics,
    pub address_limits: AddressLimits,
    /// Wakes the email worker; the HTTP layer does it once an answer that may have enqueued
    /// an email is out (`http::middleware::wake_outbox`).
    pub outbox: OutboxSignal,
    /// Records webhook events (when a URL is configured) and wakes their worker.
    pub webhooks: Webhooks,
    /// Ends the equal-time wait of the operations that must not reveal an account.
    pub timer: PreciseTimer,
}
