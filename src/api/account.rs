//! Tag `account`: the signed-in user's own account.

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::BearerAuth;
use crate::api::problem::{InternalError, Problem, ProblemCode, ProblemJson};
use crate::api::{ApiTags, AppState};
use crate::{audit, sessions};

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

/// One security event of the account.
#[derive(Debug, Object)]
pub struct ActivityEvent {
    /// The event's id.
    pub id: uuid::Uuid,
    /// `signup`, `verification`, `login`, `refresh_replay`, `password_reset`,
    /// `password_change`, `logout` or `session_revoked`.
    pub event: String,
    /// How it went, e.g. `success`, `failure`, `wrong_password`, `session_revoked`.
    pub outcome: String,
    /// The client IP.
    pub ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The session concerned, if any.
    pub session_id: Option<uuid::Uuid>,
    /// When it happened.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A page of activity, newest first.
#[derive(Debug, Object)]
pub struct ActivityPage {
    /// The events of this page.
    pub items: Vec<ActivityEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ActivityResponse {
    /// A page of the user's security events, newest first.
    #[oai(status = 200)]
    Ok(Json<ActivityPage>),
    /// `invalid_request`: the cursor is not one this server gave out.
    #[oai(status = 400)]
    BadCursor(ProblemJson),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(ProblemJson),
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

    /// The signed-in user's security activity
    ///
    /// Sign-ups, verifications, sign-ins (and failed ones), detected refresh-token replays,
    /// password resets and changes, sign-outs and revoked sessions of this account, newest
    /// first, a page at a time.
    #[oai(
        path = "/v1/me/activity",
        method = "get",
        operation_id = "list_activity"
    )]
    async fn list_activity(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Events per page, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page; absent for the first page.
        cursor: Query<Option<String>>,
    ) -> Result<ActivityResponse, InternalError> {
        let after = match cursor.0.as_deref().map(audit::Cursor::decode) {
            None => None,
            Some(Some(cursor)) => Some(cursor),
            Some(None) => {
                return Ok(ActivityResponse::BadCursor(ProblemJson(Problem::new(
                    poem::http::StatusCode::BAD_REQUEST,
                    ProblemCode::InvalidRequest,
                    "The cursor is not one this server gave out.".to_owned(),
                ))));
            }
        };
        let (events, next) =
            audit::list(&state.db, auth.0.user_id, limit.0.unwrap_or(20), after).await?;
        Ok(ActivityResponse::Ok(Json(ActivityPage {
            items: events
                .into_iter()
                .map(|e| ActivityEvent {
                    id: e.id,
                    event: e.event,
                    outcome: e.outcome,
                    ip: e.ip,
                    user_agent: e.user_agent,
                    session_id: e.session_id,
                    created_at: e.created_at,
                })
                .collect(),
            next_cursor: next.map(|cursor| cursor.encode()),
        })))
    }
}
