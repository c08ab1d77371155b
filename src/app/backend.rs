//! Tag `backend`: what the app's own backend asks codeward about its tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::{Error, Services};

/// What introspecting a token found (RFC 7662).
pub enum Introspection {
    /// A valid access token of a live session of an enabled user.
    Active(ActiveToken),
    /// Anything else: malformed, forged, expired, revoked, of another kind, or unknown. One
    /// answer for all, so it tells a caller nothing about why.
    Inactive,
}

/// The claims of an active access token.
pub struct ActiveToken {
    /// The user.
    pub sub: Uuid,
    /// The session.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub exp: DateTime<Utc>,
    pub iat: DateTime<Utc>,
    /// When the session's latest authentication happened.
    pub auth_time: DateTime<Utc>,
    /// How it happened: `pwd` or `otp`.
    pub amr: Vec<String>,
    pub email: String,
    pub email_verified: bool,
}

/// Whether `token` is an access token codeward would accept now, and its claims if so.
#[tracing::instrument(skip_all)]
pub async fn introspect(services: &Services, token: &str) -> Result<Introspection, Error> {
    // TODO(#16): JWT verification — verify the access token (signature, `typ`, `iss`, `aud`,
    // `exp`) and that its session is live and its user enabled, and answer `Active` with its
    // claims. Until access tokens are JWTs, every token is inactive.
    let _ = (services, token);
    Ok(Introspection::Inactive)
}
