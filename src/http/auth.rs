//! Authentication as a type: an operation that takes `BearerAuth` (a user's access token) or
//! `ApiKeyAuth` (an API key) is authenticated, and Swagger UI's Authorize button fills either
//! in. Each accepts only its own kind of token.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::app::{ApiKeyView, AuthUser, api_keys, session};
use crate::domain::{ApiKey, Scope};
use crate::http::AppState;
use crate::http::problem::{ApiError, InternalError, ProblemJson};

/// An access token (a JWT) from `login`, `verify_signup` or `refresh_token`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub AuthUser);

async fn check_bearer(request: &Request, bearer: Bearer) -> poem::Result<AuthUser> {
    let token = bearer.token.trim();
    let state = request
        .data::<AppState>()
        .ok_or_else(|| InternalError::Other(anyhow::anyhow!("application state missing")))?;
    session::authenticate(state, token)
        .await
        .map_err(InternalError::from)?
        .ok_or_else(ProblemJson::invalid_credential)
}

/// An API key (`cwk_…`) made with `codeward api-key create`, for the app's own backend and
/// operators' tools. An operation needing a scope the key lacks answers 403 `forbidden`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "opaque", checker = "check_api_key")]
pub struct ApiKeyAuth(pub ApiKeyView);

impl ApiKeyAuth {
    /// The key, when it has `scope`; else the 403 to answer.
    pub fn require<S>(&self, scope: Scope) -> Result<&ApiKeyView, ApiError<S>> {
        if self.0.allows(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(scope))
        }
    }
}

async fn check_api_key(request: &Request, bearer: Bearer) -> poem::Result<ApiKeyView> {
    // Only the `cwk_` shape is looked up: an access token is never taken for a key.
    let Some(key) = ApiKey::parse(bearer.token.trim()) else {
        return Err(ProblemJson::invalid_credential());
    };
    let Some(state) = request.data::<AppState>() else {
        return Err(InternalError::Other(anyhow::anyhow!("application state missing")).into());
    };
    match api_keys::authenticate(state, &key).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(ProblemJson::invalid_credential()),
        Err(error) => Err(InternalError::from(error).into()),
    }
}
