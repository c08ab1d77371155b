//! Tag `backend`: what the app's own backend asks codeward about its tokens.

use uuid::Uuid;

use crate::app::{Error, Services};
use crate::core::sessions;

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
    /// Unix seconds, as in the token (and RFC 7662).
    pub exp: i64,
    pub iat: i64,
    /// When the session's latest authentication happened (Unix seconds).
    pub auth_time: i64,
    /// How it happened: `pwd` or `otp`.
    pub amr: Vec<String>,
    pub email: String,
    pub email_verified: bool,
}

/// Whether `token` is an access token codeward would accept now, and its claims if so. Reads
/// only: a backend asking is not the user using the session.
#[tracing::instrument(skip_all)]
pub async fn introspect(services: &Services, token: &str) -> Result<Introspection, Error> {
    let now = services.clock.now();
    let found = sessions::verify_live(&services.reads, now, &services.tokens, token).await?;
    let Some(sessions::LiveSession { claims, .. }) = found else {
        return Ok(Introspection::Inactive);
    };
    Ok(Introspection::Active(ActiveToken {
        sub: claims.sub,
        sid: claims.sid,
        iss: claims.iss,
        aud: claims.aud,
        exp: claims.exp,
        iat: claims.iat,
        auth_time: claims.auth_time,
        amr: claims.amr,
        email: claims.email,
        email_verified: claims.email_verified,
    }))
}
