//! What can stop a use-case besides the outcomes it names: a limit, a full hashing queue, or
//! a failure of the machinery. One type, so `?` carries it up to the HTTP layer, which answers
//! each kind once (`http::problem::ApiError`).

use crate::core::limits::Limited;
use crate::core::passwords::HashError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rate limit refused the request; answered 429 with the limit's policy.
    #[error("rate limited by {}", .0.policy)]
    Limited(Limited),
    /// The password-hashing queue is full; answered 503 `overloaded`.
    #[error("the password hashing queue is full")]
    Overloaded,
    /// The session's latest authentication is older than `CODEWARD_REAUTH_MAX_AGE_SECS`; answered
    /// 403 `reauthentication_required`.
    #[error("a more recent authentication is required")]
    ReauthenticationRequired,
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    /// argon2 itself failed (not the queue).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// A code could not be sealed for its email.
    #[error("cannot seal a code for its email")]
    Seal,
    /// No signing key could sign or verify (none stored, its pepper gone, the database).
    #[error("signing keys: {0}")]
    Keys(#[from] crate::core::keys::KeysError),
}

impl From<Limited> for Error {
    fn from(limited: Limited) -> Self {
        Self::Limited(limited)
    }
}

impl From<HashError> for Error {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Overloaded(_) => Self::Overloaded,
            HashError::Failed(message) => Self::Hashing(message),
        }
    }
}
