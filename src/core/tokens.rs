//! Access tokens: JWTs (RFC 9068 profile: `typ: at+jwt`) signed by the current signing key,
//! verified by the key their `kid` names. codeward's own check is signature, `typ`, `iss`,
//! `aud` and `exp` here, then the session's liveness in `sessions::authenticate`. Signing is
//! the JOSE library's; checking is done here on the ring's parsed keys (`keys::public`), so
//! that each request decodes the token once.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Header;
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
/// The longest signature of the algorithms codeward signs with: RSA's, as long as the modulus
/// (2048 bits codeward generates; room for 4096).
const MAX_SIGNATURE_BYTES: usize = 512;

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
    ///
    /// A JWS in compact form, read once: the header (for `kid`, `typ` and `alg`, which must be
    /// the named key's own algorithm, never the token's choice), then the signature over the
    /// first two parts, and only then the claims.
    pub async fn verify(
        &self,
        now: DateTime<Utc>,
        raw: &str,
    ) -> Result<Option<AccessClaims>, KeysError> {
        let Some(jws) = Jws::split(raw) else {
            return Ok(None);
        };
        let Some(header) = decode_part::<JoseHeader>(jws.header) else {
            return Ok(None);
        };
        let typed = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        // No extension codeward does not know may be critical to the token (RFC 7515 §4.1.11).
        if !typed || header.crit.is_some() {
            return Ok(None);
        }
        let Some(verifier) = self.keys.verifier(&header.kid).await? else {
            return Ok(None);
        };
        if header.alg != verifier.algorithm.name() {
            return Ok(None);
        }
        let mut signature = [0u8; MAX_SIGNATURE_BYTES];
        let Ok(length) = URL_SAFE_NO_PAD.decode_slice(jws.signature, &mut signature) else {
            return Ok(None);
        };
        if !verifier
            .key
            .verifies(jws.signing_input, &signature[..length])
        {
            return Ok(None);
        }
        let Some(claims) = decode_part::<AccessClaims>(jws.payload) else {
            return Ok(None);
        };
        let valid = claims.iss == self.issuer
            && claims.aud == self.audience
            // Checked against codeward's clock, without leeway: it issued the token.
            && claims.exp > now.timestamp();
        Ok(valid.then_some(claims))
    }
}

/// A compact JWS cut in its parts (nothing decoded yet).
struct Jws<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`: what the signature signs.
    signing_input: &'a [u8],
}

impl<'a> Jws<'a> {
    /// `None` unless `raw` is three dot-separated parts, and no longer than any token codeward
    /// signs.
    fn split(raw: &'a str) -> Option<Self> {
        if raw.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let (signing_input, signature) = raw.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        Some(Self {
            header,
            payload,
            signature,
            signing_input: signing_input.as_bytes(),
        })
    }
}

/// The JOSE header members codeward reads.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: String,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// A base64url part of the token, decoded and read as JSON.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let json = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&json).ok()
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
