//! Tag `session`: sign in, rotate tokens, list and revoke sessions.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::session::{self, DeviceSession, Login, Refresh, RevokeSession};
use crate::core::limits::Group;
use crate::domain::{self, EmailAddress, PasswordAttempt, RefreshToken};
use crate::http::auth::BearerAuth;
use crate::http::body::JsonBody;
use crate::http::middleware::equal_time;
use crate::http::problem::{
    ApiError, FieldCheck, Problem, ProblemCode, ProblemJson, Public, PublicHashing, SignedIn,
};
use crate::http::schemas::{EXAMPLE_EMAIL, EXAMPLE_PASSWORD, SessionBody, example_time};
use crate::http::types::{EmailText, OptionalText, SecretText, Text};
use crate::http::{ApiTags, AppState, guard};

pub struct SessionApi;

/// One signed-in device.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SessionInfo {
    /// The session's id (for `revoke_session`).
    pub id: uuid::Uuid,
    /// The name the client gave at sign-in; absent if it gave none.
    #[oai(skip_serializing_if_is_none)]
    pub device_name: Option<String>,
    /// The client IP at sign-in or the last refresh; absent if unknown.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// The client's User-Agent at sign-in or the last refresh, without control or
    /// bidirectional-text characters; absent if it sent none.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// When the session started.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was last used (to the minute).
    pub last_used_at: chrono::DateTime<chrono::Utc>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl Example for SessionInfo {
    fn example() -> Self {
        let at = example_time();
        Self {
            id: uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a"),
            device_name: Some("Ada's iPhone".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Codeward/1.4 (iPhone; iOS 18.2)".to_owned()),
            created_at: at,
            last_used_at: at,
            current: true,
        }
    }
}

/// Sign in with email and password.
#[derive(Object)]
#[oai(example)]
pub struct LoginRequest {
    /// The account's address.
    pub email: EmailText,
    /// The account's password (at most 1024 characters).
    pub password: SecretText,
    /// A name for this device in the session list (at most 128 characters, no control or
    /// bidirectional-text characters).
    pub device_name: Option<OptionalText>,
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            password: SecretText(EXAMPLE_PASSWORD.to_owned()),
            device_name: Some(OptionalText("Ada's iPhone".to_owned())),
        }
    }
}

/// Swap a refresh token for a new pair.
#[derive(Object)]
#[oai(example)]
pub struct RefreshRequest {
    /// The current refresh token (`cwr_…`).
    pub refresh_token: Text,
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh_token: Text("cwr_ExampleRefreshToken-not-a-real-one_00000000".to_owned()),
        }
    }
}

impl From<DeviceSession> for SessionInfo {
    fn from(session: DeviceSession) -> Self {
        Self {
            id: session.id,
            device_name: session.device_name,
            ip: session.ip,
            user_agent: session.user_agent,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            current: session.current,
        }
    }
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Signed in.
    #[oai(status = 200)]
    SignedIn(Json<SessionBody>),
    /// `invalid_credentials`: unknown email or wrong password (one answer for both).
    #[oai(status = 401)]
    InvalidCredentials(ProblemJson),
    /// The email address or password is malformed; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl From<Login> for LoginResponse {
    fn from(outcome: Login) -> Self {
        match outcome {
            Login::SignedIn(session) => Self::SignedIn(Json(session.into())),
            Login::InvalidCredentials => Self::InvalidCredentials(ProblemJson(Problem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::InvalidCredentials,
                "The email address or the password is wrong.".to_owned(),
            ))),
        }
    }
}

#[derive(ApiResponse)]
pub enum RefreshResponse {
    /// A new access and refresh token; the presented refresh token is used up.
    #[oai(status = 200)]
    Rotated(Json<SessionBody>),
    /// `invalid_token`: unknown, expired, revoked or replayed refresh token. A replayed one
    /// also ends its session.
    #[oai(status = 401)]
    InvalidToken(ProblemJson),
}

impl From<Refresh> for RefreshResponse {
    fn from(outcome: Refresh) -> Self {
        match outcome {
            Refresh::Rotated(session) => Self::Rotated(Json(session.into())),
            Refresh::InvalidToken => Self::InvalidToken(ProblemJson(Problem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::InvalidToken,
                "The refresh token is unknown, expired, revoked or already used.".to_owned(),
            ))),
        }
    }
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Revoked.
    #[oai(status = 204)]
    Revoked,
}

#[derive(ApiResponse)]
pub enum RevokeOneResponse {
    /// Revoked; its tokens stop working at once.
    #[oai(status = 204)]
    Revoked,
    /// `invalid_request`: the id is not a UUID.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `not_found`: the user has no live session with this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

impl From<RevokeSession> for RevokeOneResponse {
    fn from(outcome: RevokeSession) -> Self {
        match outcome {
            RevokeSession::Revoked => Self::Revoked,
            RevokeSession::NotFound => Self::NotFound(ProblemJson(Problem::new(
                StatusCode::NOT_FOUND,
                ProblemCode::NotFound,
                "You have no live session with this id.".to_owned(),
            ))),
        }
    }
}

#[derive(ApiResponse)]
pub enum SessionsResponse {
    /// The user's live sessions, most recently used first.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionInfo>>),
}

#[OpenApi(tag = "ApiTags::Session")]
impl SessionApi {
    /// Sign in
    ///
    /// Starts a session with email and password. An unknown address, a never-verified
    /// account and a wrong password give the same 401 `invalid_credentials` in the same time.
    #[oai(
        path = "/v1/login",
        method = "post",
        operation_id = "login",
        transform = "equal_time"
    )]
    async fn login(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<LoginRequest>,
    ) -> Result<LoginResponse, ApiError<PublicHashing>> {
        let requester = guard::limited(&state, request, Group::Login)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        let password = fields.check(PasswordAttempt::parse(&body.password, "password"));
        let device = fields.check(domain::parse_device_name(body.device_name.as_deref()));
        let (Some(email), Some(password), Some(device), true) =
            (email, password, device, fields.passed())
        else {
            return Ok(LoginResponse::ValidationFailed(fields.into_problem()));
        };
        let outcome = session::login(&state, &email, &password, device, &requester).await?;
        Ok(outcome.into())
    }

    /// Rotate the tokens
    ///
    /// Swaps a refresh token for a new access and refresh token. Each refresh token rotates
    /// once; presented again within `CODEWARD_REFRESH_REUSE_GRACE_SECS` (10 s) of its rotation
    /// (racing requests, a lost answer) it gets another pair for the same session, and later
    /// it is treated as theft and ends the session.
    #[oai(
        path = "/v1/token/refresh",
        method = "post",
        operation_id = "refresh_token"
    )]
    async fn refresh_token(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<RefreshRequest>,
    ) -> Result<RefreshResponse, ApiError<Public>> {
        let requester = guard::limited(&state, request, Group::Refresh)?;
        let presented = RefreshToken::parse(body.refresh_token.trim());
        Ok(session::refresh(&state, presented, &requester)
            .await?
            .into())
    }

    /// Sign out
    ///
    /// Revokes the current session: its access and refresh tokens stop working at once.
    #[oai(path = "/v1/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
    ) -> Result<RevokeResponse, ApiError<SignedIn>> {
        let requester = guard::requester(&state, request);
        session::logout(&state, &auth.0, &requester).await?;
        Ok(RevokeResponse::Revoked)
    }

    /// List sessions
    ///
    /// The signed-in user's live sessions (devices), the current one marked.
    #[oai(path = "/v1/sessions", method = "get", operation_id = "list_sessions")]
    async fn list_sessions(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<SessionsResponse, ApiError<SignedIn>> {
        let sessions = session::list_sessions(&state, &auth.0).await?;
        let sessions = sessions.into_iter().map(SessionInfo::from).collect();
        Ok(SessionsResponse::Ok(Json(sessions)))
    }

    /// Revoke a session
    ///
    /// Ends one of the user's sessions (e.g. a lost phone); 404 if the user has no live
    /// session with this id.
    #[oai(
        path = "/v1/sessions/:id",
        method = "delete",
        operation_id = "revoke_session"
    )]
    async fn revoke_session(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        /// The session's id, from `list_sessions`.
        id: Path<uuid::Uuid>,
    ) -> Result<RevokeOneResponse, ApiError<SignedIn>> {
        let requester = guard::requester(&state, request);
        let outcome = session::revoke_session(&state, &auth.0, id.0, &requester).await?;
        Ok(outcome.into())
    }

    /// Revoke every other session
    ///
    /// Ends all of the user's sessions except the current one.
    #[oai(
        path = "/v1/sessions",
        method = "delete",
        operation_id = "revoke_other_sessions"
    )]
    async fn revoke_other_sessions(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
    ) -> Result<RevokeResponse, ApiError<SignedIn>> {
        let requester = guard::requester(&state, request);
        session::revoke_other_sessions(&state, &auth.0, &requester).await?;
        Ok(RevokeResponse::Revoked)
    }
}
