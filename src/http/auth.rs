//! Bearer authentication as a type: an operation that takes `BearerAuth` is authenticated, and
//! Swagger UI's Authorize button fills it in.

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::app::{AuthUser, session};
use crate::http::AppState;
use crate::http::problem::{InternalError, UNAUTHORIZED_DETAIL};

/// An access token (a JWT) from `login`, `verify_signup` or `refresh_token`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub AuthUser);

async fn check_bearer(request: &Request, bearer: Bearer) -> poem::Result<AuthUser> {
    let unauthorized = || poem::Error::from_string(UNAUTHORIZED_DETAIL, StatusCode::UNAUTHORIZED);
    let token = bearer.token.trim();
    let state = request
        .data::<AppState>()
        .ok_or_else(|| InternalError::Other(anyhow::anyhow!("application state missing")))?;
    session::authenticate(state, token)
        .await
        .map_err(InternalError::from)?
        .ok_or_else(unauthorized)
}
