//! Access tokens: JWTs (RFC 9068 profile: `typ: at+jwt`) signed by the current signing key,
//! verified by the key their `kid` names. codeward's own check is signature, `typ`, `iss`,
//! `aud` and `exp` here, then the session's liveness in `sessions::authenticate`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::core::keys::material::jose_algorithm;
use crate::core::keys::{Keys, KeysError};
use crate::domain::AccessToken;

/// The JWT `typ` of access tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// Longer than any token codeward signs (an RS256 one is about 800 bytes); longer ones are
/// refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub email: String,
    pub email_verified: bool,
}

/// Signs and checks access tokens.
pub struct Tokens {
    pub keys: Arc<Keys>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// `issuer` is the `iss` of every token (`Config::issuer`, resolved once the listener is
    /// bound).
    pub fn new(keys: Arc<Keys>, config: &Config, issuer: String) -> Self {
        Self {
            keys,
            issuer,
            audience: config.tokens.token_audience.clone(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs the claims of a token with the current key; `iss` and `aud` are filled in here.
    pub async fn issue(&self, claims: Claims) -> Result<AccessToken, KeysError> {
        let signer = self.keys.signer().await?;
        let mut header = Header::new(jose_algorithm(signer.algorithm));
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(signer.kid.clone());
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: claims.user_id,
            sid: claims.session_id,
            iat: claims.issued_at.timestamp(),
            exp: claims.expires_at.timestamp(),
            jti: Uuid::new_v4(),
            auth_time: claims.auth_time.timestamp(),
            amr: vec![claims.amr.to_owned()],
            email: claims.email,
            email_verified: claims.email_verified,
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|e| crate::core::keys::material::KeyError::Unusable(e.to_string()))?;
        Ok(AccessToken::new(jwt))
    }

    /// The claims of `raw` if it is an access token codeward signed, meant for this issuer and
    /// audience, and not expired at `now`; `None` for anything else.
    pub async fn verify(
        &self,
        now: DateTime<Utc>,
        raw: &str,
    ) -> Result<Option<AccessClaims>, KeysError> {
        if raw.len() > MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let Ok(header) = jsonwebtoken::decode_header(raw) else {
            return Ok(None);
        };
        let typed = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        let Some(kid) = header.kid.as_deref().filter(|_| typed) else {
            return Ok(None);
        };
        let Some(verifier) = self.keys.verifier(kid).await? else {
            return Ok(None);
        };
        // The algorithm is the key's, never the token's choice.
        let mut validation = Validation::new(jose_algorithm(verifier.algorithm));
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against codeward's clock, without leeway: it issued the token.
        validation.validate_exp = false;
        validation.leeway = 0;
        let Ok(data) = jsonwebtoken::decode::<AccessClaims>(raw, &verifier.key, &validation) else {
            return Ok(None);
        };
        Ok((data.claims.exp > now.timestamp()).then_some(data.claims))
    }
}

/// What a token says, as the session that it is issued for knows it.
#[derive(Debug)]
pub struct Claims {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub auth_time: DateTime<Utc>,
    pub amr: &'static str,
    pub email: String,
    pub email_verified: bool,
}
