//! Tag `backend`: for the app's own backend, which asks codeward about the tokens its clients
//! send.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use crate::app::backend::{self, Introspection};
use crate::domain::Scope;
use crate::http::auth::ApiKeyAuth;
use crate::http::body::FormBody;
use crate::http::problem::{ApiError, KeyedForm};
use crate::http::schemas::{EXAMPLE_EMAIL, example_time};
use crate::http::{ApiTags, AppState};

pub struct BackendApi;

/// An RFC 7662 introspection request, sent as `application/x-www-form-urlencoded`.
// No `Debug`: the token is a credential.
#[derive(Object, Deserialize)]
#[oai(example)]
pub struct IntrospectionRequest {
    /// The token to ask about: an access token a client sent to the backend.
    pub token: String,
    /// What kind of token `token` is (`access_token`, say); a hint codeward may ignore.
    pub token_type_hint: Option<String>,
}

impl Example for IntrospectionRequest {
    fn example() -> Self {
        Self {
            token: "eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjYtMDEiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIwMTk1ZjNhMS0yYjdjLTdlMTAtOGE0ZC01YzZiN2E4ZjllMDEifQ.c2lnbmF0dXJl".to_owned(),
            token_type_hint: Some("access_token".to_owned()),
        }
    }
}

/// What codeward knows of a token (RFC 7662). An inactive token is exactly
/// `{"active": false}`: every other member is absent.
#[derive(Debug, Object)]
#[oai(example)]
pub struct IntrospectionResponse {
    /// Whether the token is a valid access token of a live session of an enabled user.
    pub active: bool,
    /// The user's id; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<uuid::Uuid>,
    /// The session's id; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<uuid::Uuid>,
    /// The issuer (`CODEWARD_ISSUER`); absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    /// The audience (`CODEWARD_TOKEN_AUDIENCE`); absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    /// When the token expires, in seconds since the Unix epoch; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    /// When the token was issued, in seconds since the Unix epoch; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    /// When the session's latest authentication happened, in seconds since the Unix epoch;
    /// absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub auth_time: Option<i64>,
    /// How that authentication happened: `["pwd"]` for a password, `["otp"]` for a code;
    /// absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub amr: Option<Vec<String>>,
    /// The user's address, in its normal form; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// Whether the user's address is verified; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
    /// Always `Bearer`; absent unless active.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
}

impl Example for IntrospectionResponse {
    fn example() -> Self {
        let at = example_time().timestamp();
        Self {
            active: true,
            sub: Some(uuid::uuid!("0195f3a1-2b7c-7e10-8a4d-5c6b7a8f9e01")),
            sid: Some(uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a")),
            iss: Some("https://auth.example.com".to_owned()),
            aud: Some("codeward".to_owned()),
            exp: Some(at + 900),
            iat: Some(at),
            auth_time: Some(at),
            amr: Some(vec!["pwd".to_owned()]),
            email: Some(EXAMPLE_EMAIL.to_owned()),
            email_verified: Some(true),
            token_type: Some("Bearer".to_owned()),
        }
    }
}

impl From<Introspection> for IntrospectionResponse {
    fn from(introspection: Introspection) -> Self {
        let Introspection::Active(token) = introspection else {
            return Self {
                active: false,
                sub: None,
                sid: None,
                iss: None,
                aud: None,
                exp: None,
                iat: None,
                auth_time: None,
                amr: None,
                email: None,
                email_verified: None,
                token_type: None,
            };
        };
        Self {
            active: true,
            sub: Some(token.sub),
            sid: Some(token.sid),
            iss: Some(token.iss),
            aud: Some(token.aud),
            exp: Some(token.exp),
            iat: Some(token.iat),
            auth_time: Some(token.auth_time),
            amr: Some(token.amr),
            email: Some(token.email),
            email_verified: Some(token.email_verified),
            token_type: Some("Bearer".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum IntrospectResponse {
    /// What codeward knows of the token: its claims when active, else only `active: false`.
    #[oai(status = 200)]
    Ok(Json<IntrospectionResponse>),
}

#[OpenApi(tag = "ApiTags::Backend")]
impl BackendApi {
    /// Introspect an access token
    ///
    /// RFC 7662 token introspection for the app's own backend: whether a token a client sent
    /// is a valid access token of a live session of an enabled user, and its claims if so.
    /// Revocation shows here at once. Any other token, malformed, unknown, expired or revoked,
    /// is exactly `{"active": false}`. Needs an API key with the `introspect` scope.
    #[oai(
        path = "/v1/token/introspect",
        method = "post",
        operation_id = "introspect_token"
    )]
    async fn introspect_token(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        body: FormBody<IntrospectionRequest>,
    ) -> Result<IntrospectResponse, ApiError<KeyedForm>> {
        auth.require(Scope::Introspect)?;
        let introspection = backend::introspect(&state, &body.token).await?;
        Ok(IntrospectResponse::Ok(Json(introspection.into())))
    }
}
