//! The rules of the service, below the use-cases: the code engine (the only place that knows how
//! codes are hashed), password hashing, limits, sessions, API keys, the audit trail, email
//! delivery, webhooks, the queue both deliver through, and housekeeping of the rows they leave
//! behind.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod codes;
pub mod deletion;
pub mod directory;
mod error;
pub mod housekeeping;
pub mod keys;
pub mod limits;
pub mod live_session;
pub mod mail;
pub mod passwords;
pub mod queue;
pub mod seal;
pub mod sessions;
pub mod tokens;
pub mod webhooks;

pub use error::Error;
