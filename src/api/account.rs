//! Tag `account`: the signed-in user's own account.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::BearerAuth;
use crate::api::problem::{InternalError, Problem, ProblemCode, ProblemJson};
use crate::api::{ApiTags, AppState};
use crate::sessions;

pub struct AccountApi;

/// A user account.
#[derive(Debug, Object)]
pub struct User {
    /// Stable identifier.
    pub id: uuid::Uuid,
    /// The normalized address.
    pub email: String,
    /// Whether the address was proven with a code.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Language tag used for emails.
    pub locale: String,
}

impl From<entity::users::Model> for User {
    fn from(user: entity::users::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified_at.is_some(),
            created_at: user.created_at,
            locale: user.locale,
        }
    }
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The signed-in user.
    #[oai(status = 200)]
    Ok(Json<User>),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(ProblemJson),
}

pub(crate) fn unauthorized() -> ProblemJson {
    ProblemJson(Problem::new(
        poem::http::StatusCode::UNAUTHORIZED,
        ProblemCode::Unauthorized,
        "The access token is missing, unknown, expired or revoked.".to_owned(),
    ))
}

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// The signed-in user
    ///
    /// Returns the account the access token belongs to.
    #[oai(path = "/v1/me", method = "get", operation_id = "get_me")]
    async fn get_me(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<MeResponse, InternalError> {
        Ok(match sessions::user(&state, &auth.0).await? {
            Some(user) => MeResponse::Ok(Json(user.into())),
            None => MeResponse::Unauthorized(unauthorized()),
        })
    }
}
