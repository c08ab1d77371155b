//! Tag `account`: the signed-in user's own account.

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::core::{audit, sessions};
use crate::http::auth::BearerAuth;
use crate::http::problem::{InternalError, Problem, ProblemCode, ProblemJson};
use crate::http::{ApiTags, AppState};

pub struct AccountApi;

/// A user account.
#[derive(Debug, Object)]
#[oai(example)]
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

impl Example for User {
    fn example() -> Self {
        Self {
            id: uuid::uuid!("0195f3a1-2b7c-7e10-8a4d-5c6b7a8f9e01"),
            email: crate::http::signup::EXAMPLE_EMAIL.to_owned(),
            email_verified: true,
            created_at: example_time(),
            locale: "en".to_owned(),
        }
    }
}

/// The moment the examples happen at.
pub(crate) fn example_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
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
#[oai(example)]
pub struct ActivityEvent {
    /// The event's id.
    pub id: uuid::Uuid,
    /// `signup`, `verification`, `login`, `refresh_replay`, `password_reset`,
    /// `password_change`, `logout` or `session_revoked`.
    pub event: String,
    /// How it went, e.g. `success`, `failure`, `wrong_password`, `session_revoked`.
    pub outcome: String,
    /// The client IP; absent if unknown.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// The client's User-Agent; absent if it sent none.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// The session concerned; absent if none.
    #[oai(skip_serializing_if_is_none)]
    pub session_id: Option<uuid::Uuid>,
    /// When it happened.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Example for ActivityEvent {
    fn example() -> Self {
        Self {
            id: uuid::uuid!("0195f3a4-0d2e-7f31-a6b9-8c7d6e5f4a3b"),
            event: "login".to_owned(),
            outcome: "success".to_owned(),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Codeward/1.4 (iPhone; iOS 18.2)".to_owned()),
            session_id: Some(uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a")),
            created_at: example_time(),
        }
    }
}

/// A page of activity, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ActivityPage {
    /// The events of this page.
    pub items: Vec<ActivityEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl Example for ActivityPage {
    fn example() -> Self {
        Self {
            items: vec![ActivityEvent::example()],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum ActivityResponse {
    /// A page of the user's security events, newest first.
    #[oai(status = 200)]
    Ok(Json<ActivityPage>),
    /// `invalid_request`: `cursor` is not one this server gave out, or `limit` is not a whole
    /// number from 1 to 100.
    #[oai(status = 400)]
    BadCursor(ProblemJson),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// Always `Bearer`: the scheme to authenticate with.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The signed-in user.
    #[oai(status = 200)]
    Ok(Json<User>),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// Always `Bearer`: the scheme to authenticate with.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

/// 401 `unauthorized` and its `WWW-Authenticate` challenge.
pub(crate) fn unauthorized() -> (ProblemJson, String) {
    let problem = ProblemJson(Problem::new(
        poem::http::StatusCode::UNAUTHORIZED,
        ProblemCode::Unauthorized,
        "The access token is missing, unknown, expired or revoked.".to_owned(),
    ));
    (problem, "Bearer".to_owned())
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
            None => {
                let (problem, challenge) = unauthorized();
                MeResponse::Unauthorized(problem, challenge)
            }
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
