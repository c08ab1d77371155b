//! `GET /.well-known/jwks.json`: the signing keys' public halves as an RFC 7517 JWK Set.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::keyset;
use crate::http::problem::InternalError;
use crate::http::{ApiTags, AppState};

pub struct KeySetApi;

/// What backends may cache the key set for; a new key is published longer than this before it
/// signs (`CODEWARD_SIGNING_KEY_PREPUBLISH_SECS`, at least 301 s).
const CACHE_CONTROL: &str = "public, max-age=300";

/// A public key that verifies access tokens (RFC 7517). Never carries a private member.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    pub kty: String,
    /// Key id: the `kid` in the header of the tokens this key signed (its RFC 7638 thumbprint).
    pub kid: String,
    /// The algorithm the key signs with: `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub use_: String,
    /// Curve, for `OKP` (`Ed25519`) and `EC` (`P-256`) keys; absent for RSA.
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url; absent for RSA.
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    /// y coordinate, base64url, for EC keys only.
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
    /// Modulus, base64url, for RSA keys only.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    /// Public exponent, base64url, for RSA keys only.
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
}

/// The JWK Set: every key a live access token may be signed with, and the next one.
#[derive(Debug, Object)]
#[oai(example)]
pub struct JwkSet {
    /// The keys, oldest first.
    pub keys: Vec<Jwk>,
}

impl Example for Jwk {
    fn example() -> Self {
        Self {
            kty: "OKP".to_owned(),
            kid: "hcLbfBPtoEnmm9TQvxjtD3eBZW8K4fX1T6n4_q6NzqY".to_owned(),
            alg: "EdDSA".to_owned(),
            use_: "sig".to_owned(),
            crv: Some("Ed25519".to_owned()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned()),
            y: None,
            n: None,
            e: None,
        }
    }
}

impl Example for JwkSet {
    fn example() -> Self {
        Self {
            keys: vec![Jwk::example()],
        }
    }
}

impl Jwk {
    /// The public members of a stored JWK, by name (the JOSE library's type serialises to
    /// exactly RFC 7517's members).
    fn from_jose(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Self> {
        let value = serde_json::to_value(jwk).ok()?;
        let member = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            kty: member("kty")?,
            kid: member("kid")?,
            alg: member("alg")?,
            use_: member("use").unwrap_or_else(|| "sig".to_owned()),
            crv: member("crv"),
            x: member("x"),
            y: member("y"),
            n: member("n"),
            e: member("e"),
        })
    }
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set. Cache it for up to 5 minutes; fetch it again when a token names an
    /// unknown `kid`.
    #[oai(status = 200)]
    Ok(
        Json<JwkSet>,
        /// `public, max-age=300`.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(tag = "ApiTags::Backend")]
impl KeySetApi {
    /// The key set that verifies access tokens
    ///
    /// RFC 7517 JWK Set of the public keys codeward signs access tokens with: the current key,
    /// the next one (published at least an hour before it signs) and retired ones until every
    /// token they signed has expired. No private key material, ever. Point your JWT library's
    /// remote key set at this URL (PyJWT's `PyJWKClient`, jose's `createRemoteJWKSet`).
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "get_jwks"
    )]
    async fn get_jwks(&self, state: Data<&AppState>) -> Result<JwksResponse, InternalError> {
        let set = keyset::published(&state).await?;
        let keys = set.keys.iter().filter_map(Jwk::from_jose).collect();
        Ok(JwksResponse::Ok(
            Json(JwkSet { keys }),
            CACHE_CONTROL.to_owned(),
        ))
    }
}
