//! Tag `session`: sign in, rotate tokens, list and revoke sessions.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::Error;
use crate::app::signup as accounts;
use crate::core::limits::Group;
use crate::core::sessions::{self, IssuedSession, RevokeReason};
use crate::domain::{self, EmailAddress, PasswordAttempt, RefreshToken};
use crate::http::account::User;
use crate::http::auth::BearerAuth;
use crate::http::middleware::equal_time;
use crate::http::problem::{
    InternalError, JsonBodyError, Problem, ProblemCode, ProblemJson, rate_limited,
};
use crate::http::signup::{EXAMPLE_EMAIL, EXAMPLE_PASSWORD, overloaded, validation};
use crate::http::types::{EmailText, OptionalText, SecretText, Text};
use crate::http::{ApiTags, AppState, client};

pub struct SessionApi;

/// A signed-in session: a short-lived access token and a refresh token that rotates on use.
#[derive(Object)]
#[oai(rename = "Session", example)]
pub struct SessionBody {
    /// Opaque bearer token (`cwa_…`) for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Opaque refresh token (`cwr_…`); `refresh_token` swaps it for a new pair, once.
    pub refresh_token: String,
    /// Seconds the refresh token stays usable if not used.
    pub refresh_expires_in: i64,
    /// This session's id, as listed by `list_sessions`.
    pub session_id: uuid::Uuid,
    // No doc comment: a described field becomes `allOf: [$ref]`, which generators turn into
    // a copy of the type. `User`'s description says it.
    pub user: User,
}

impl From<IssuedSession> for SessionBody {
    fn from(session: IssuedSession) -> Self {
        Self {
            access_token: session.access.expose().to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: session.access_expires_in,
            refresh_token: session.refresh.expose().to_owned(),
            refresh_expires_in: session.refresh_expires_in,
            session_id: session.session_id,
            user: session.user.into(),
        }
    }
}

impl Example for SessionBody {
    fn example() -> Self {
        Self {
            access_token: "cwa_ExampleAccessToken-not-a-real-one_000000000".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: "cwr_ExampleRefreshToken-not-a-real-one_00000000".to_owned(),
            refresh_expires_in: 2_592_000,
            session_id: uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a"),
            user: User::example(),
        }
    }
}

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
    /// The client's User-Agent at sign-in or the last refresh; absent if it sent none.
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
        let at = crate::http::account::example_time();
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
    /// A name for this device in the session list (at most 128 characters).
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

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Signed in.
    #[oai(status = 200)]
    SignedIn(Json<SessionBody>),
    /// `invalid_request`: the body is not JSON, or a field is missing or not a string.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `invalid_credentials`: unknown email or wrong password (one answer for both).
    #[oai(status = 401)]
    InvalidCredentials(ProblemJson),
    /// The email address or password is malformed; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
    /// `overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Overloaded(
        ProblemJson,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// `rate_limited`: too many requests from this client or for this address; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    RateLimited(
        ProblemJson,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
        /// The policy that was hit, e.g. `"resend-cooldown";q=1;w=60`.
        #[oai(header = "RateLimit-Policy")]
        String,
        /// What remains of it: `"resend-cooldown";r=0;t=42`.
        #[oai(header = "RateLimit")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum RefreshResponse {
    /// A new access and refresh token; the presented refresh token is used up.
    #[oai(status = 200)]
    Rotated(Json<SessionBody>),
    /// `invalid_request`: the body is not JSON, or a field is missing or not a string.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `invalid_token`: unknown, expired, revoked or replayed refresh token. A replayed one
    /// also ends its session.
    #[oai(status = 401)]
    InvalidToken(ProblemJson),
    /// `rate_limited`: too many requests from this client or for this address; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    RateLimited(
        ProblemJson,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
        /// The policy that was hit, e.g. `"resend-cooldown";q=1;w=60`.
        #[oai(header = "RateLimit-Policy")]
        String,
        /// What remains of it: `"resend-cooldown";r=0;t=42`.
        #[oai(header = "RateLimit")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Revoked.
    #[oai(status = 204)]
    Revoked,
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
pub enum RevokeOneResponse {
    /// Revoked; its tokens stop working at once.
    #[oai(status = 204)]
    Revoked,
    /// `invalid_request`: the id is not a UUID.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// Always `Bearer`: the scheme to authenticate with.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `not_found`: the user has no live session with this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

#[derive(ApiResponse)]
pub enum SessionsResponse {
    /// The user's live sessions, most recently used first.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionInfo>>),
    /// `unauthorized`: the access token is missing, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// Always `Bearer`: the scheme to authenticate with.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

fn problem(status: poem::http::StatusCode, code: ProblemCode, detail: &str) -> ProblemJson {
    ProblemJson(Problem::new(status, code, detail.to_owned()))
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
        body: Json<LoginRequest>,
    ) -> Result<LoginResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state.ip_limits.check(Group::Login, requester.ip.as_deref()) {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(LoginResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let mut problems = Vec::new();
        let email = EmailAddress::parse(&body.email)
            .map_err(|p| problems.push(p))
            .ok();
        let password = PasswordAttempt::parse(&body.password, "password")
            .map_err(|p| problems.push(p))
            .ok();
        let device = domain::parse_device_name(body.device_name.as_deref())
            .map_err(|p| problems.push(p))
            .ok();
        let (Some(email), Some(password), Some(device), true) =
            (email, password, device, problems.is_empty())
        else {
            return Ok(LoginResponse::ValidationFailed(validation(problems)));
        };
        match accounts::login(&state, &email, &password, device, &requester).await {
            Ok(Ok(Some(session))) => Ok(LoginResponse::SignedIn(Json(session.into()))),
            Ok(Err(limited)) => {
                let (problem, retry, policy, remaining) = rate_limited(&limited);
                Ok(LoginResponse::RateLimited(
                    problem, retry, policy, remaining,
                ))
            }
            Ok(Ok(None)) => Ok(LoginResponse::InvalidCredentials(problem(
                poem::http::StatusCode::UNAUTHORIZED,
                ProblemCode::InvalidCredentials,
                "The email address or the password is wrong.",
            ))),
            Err(Error::Overloaded(_)) => {
                let (problem, retry) = overloaded();
                Ok(LoginResponse::Overloaded(problem, retry))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Rotate the tokens
    ///
    /// Swaps a refresh token for a new access and refresh token. Each refresh token works
    /// once; presenting a used one again is treated as theft and ends the session.
    #[oai(
        path = "/v1/token/refresh",
        method = "post",
        operation_id = "refresh_token"
    )]
    async fn refresh_token(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<RefreshResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::Refresh, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(RefreshResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let presented = RefreshToken::parse(body.refresh_token.trim());
        Ok(
            match sessions::refresh(&state, presented, &requester).await? {
                Some(session) => RefreshResponse::Rotated(Json(session.into())),
                None => RefreshResponse::InvalidToken(problem(
                    poem::http::StatusCode::UNAUTHORIZED,
                    ProblemCode::InvalidToken,
                    "The refresh token is unknown, expired, revoked or already used.",
                )),
            },
        )
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
    ) -> Result<RevokeResponse, InternalError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        sessions::revoke(
            &state,
            &auth.0,
            auth.0.session_id,
            RevokeReason::Logout,
            &requester,
        )
        .await?;
        tracing::info!(user_id = %auth.0.user_id, session_id = %auth.0.session_id, "logout");
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
    ) -> Result<SessionsResponse, InternalError> {
        let sessions = sessions::list(&state, auth.0.user_id).await?;
        Ok(SessionsResponse::Ok(Json(
            sessions
                .into_iter()
                .map(|s| SessionInfo {
                    current: s.id == auth.0.session_id,
                    id: s.id,
                    device_name: s.device_name,
                    ip: s.ip,
                    user_agent: s.user_agent,
                    created_at: s.created_at,
                    last_used_at: s.last_used_at,
                })
                .collect(),
        )))
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
    ) -> Result<RevokeOneResponse, InternalError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if sessions::revoke(&state, &auth.0, id.0, RevokeReason::Revoked, &requester).await? {
            tracing::info!(user_id = %auth.0.user_id, revoked = %id.0, "session revoked");
            Ok(RevokeOneResponse::Revoked)
        } else {
            Ok(RevokeOneResponse::NotFound(problem(
                poem::http::StatusCode::NOT_FOUND,
                ProblemCode::NotFound,
                "You have no live session with this id.",
            )))
        }
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
    ) -> Result<RevokeResponse, InternalError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        let count = sessions::revoke_others(&state, &auth.0, &requester).await?;
        tracing::info!(user_id = %auth.0.user_id, count, "other sessions revoked");
        Ok(RevokeResponse::Revoked)
    }
}
