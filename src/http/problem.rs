//! RFC 9457 problem details: the one shape of every error codeward returns, including the
//! framework's own (unknown path, wrong method, malformed JSON, oversized body, panics).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ToJSON, Type};

use poem_openapi::{ApiResponse, Enum, Object, payload::Payload};

use crate::core::limits::Limited;
use crate::domain::FieldProblem;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Machine-readable error code; `type` is `urn:codeward:problem:<code>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ProblemCode {
    /// Malformed JSON, or a missing or mistyped field.
    InvalidRequest,
    /// Wrong, expired, used, locked or unknown code.
    InvalidCode,
    /// Missing, unknown, expired or revoked access token.
    Unauthorized,
    /// Unknown email or wrong password.
    InvalidCredentials,
    /// Unknown, expired, revoked or replayed refresh token.
    InvalidToken,
    /// Current password wrong on an authenticated change.
    WrongPassword,
    /// Unknown path, or a resource this user does not have.
    NotFound,
    /// The path exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// The request body is not JSON.
    UnsupportedMediaType,
    /// A field is syntactically fine but not acceptable; `errors` says why.
    ValidationFailed,
    /// A rate limit was hit; retry after `retry_after` seconds.
    RateLimited,
    /// The password-hashing queue is full; retry after `Retry-After` seconds.
    Overloaded,
    /// The server cannot serve traffic yet (database unreachable or migrations pending).
    NotReady,
    /// An unexpected failure on the server; details are in its log under the request id.
    InternalError,
}

impl ProblemCode {
    fn name(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidCode => "invalid_code",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::WrongPassword => "wrong_password",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::NotReady => "not_ready",
            Self::InternalError => "internal_error",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is malformed",
            Self::InvalidCode => "The code is invalid",
            Self::Unauthorized => "Authentication is required",
            Self::InvalidCredentials => "The email or password is wrong",
            Self::InvalidToken => "The refresh token is invalid",
            Self::WrongPassword => "The current password is wrong",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The request body must be JSON",
            Self::ValidationFailed => "Some fields are not acceptable",
            Self::RateLimited => "Too many requests",
            Self::Overloaded => "The server is busy",
            Self::NotReady => "The server is not ready",
            Self::InternalError => "Internal server error",
        }
    }
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Object)]
#[oai(example)]
pub struct FieldError {
    /// The request field, e.g. `password`.
    pub field: String,
    /// Machine-readable reason, e.g. `too_short`.
    pub code: String,
    /// A sentence a person can read.
    pub message: String,
}

impl Example for FieldError {
    fn example() -> Self {
        Self {
            field: "password".to_owned(),
            code: "too_short".to_owned(),
            message: "The password needs at least 8 characters.".to_owned(),
        }
    }
}

/// An RFC 9457 problem details object.
#[derive(Clone, Debug, PartialEq, Eq, Object)]
#[oai(example)]
pub struct Problem {
    /// `urn:codeward:problem:<code>`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// What went wrong with this request.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    // No doc comment: a described field becomes `allOf: [$ref]`, which generators turn into
    // a copy of the type (or refuse, for enums). `ProblemCode`'s description says it.
    pub code: ProblemCode,
    /// Fields that failed validation (422 only).
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldError>>,
    /// Seconds to wait before retrying (429 only).
    #[oai(skip_serializing_if_is_none)]
    pub retry_after: Option<u64>,
}

impl Example for Problem {
    fn example() -> Self {
        Self::validation(vec![FieldProblem {
            field: "password",
            code: "too_short",
            message: "The password needs at least 8 characters.".to_owned(),
        }])
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<Option<String>>) -> Self {
        Self {
            type_: format!("urn:codeward:problem:{}", code.name()),
            title: code.title().to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: None,
            retry_after: None,
        }
    }

    /// 422 `validation_failed`, one `errors[]` entry per refused field.
    pub fn validation(problems: Vec<FieldProblem>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::ValidationFailed,
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
        );
        problem.errors = Some(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: p.field.to_owned(),
                    code: p.code.to_owned(),
                    message: p.message,
                })
                .collect(),
        );
        problem
    }

    /// 400 `invalid_code`: one answer for every kind of bad code.
    pub fn invalid_code() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidCode,
            "The code is wrong, expired or already used. Request a new one if needed.".to_owned(),
        )
    }

    /// 429 `rate_limited`, saying when to retry.
    pub fn rate_limited(limited: &Limited) -> Self {
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::RateLimited,
            format!(
                "Too many requests; retry in {} seconds.",
                limited.retry_after
            ),
        );
        problem.retry_after = Some(limited.retry_after);
        problem
    }

    /// 503 `overloaded`: the password-hashing queue is full.
    pub fn overloaded() -> Self {
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::Overloaded,
            "Too many sign-ins are being processed; retry in a second.".to_owned(),
        );
        problem.retry_after = Some(1);
        problem
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::InternalError,
            "An unexpected error occurred; it has been logged under this request's X-Request-Id."
                .to_owned(),
        )
    }
}

/// A `Problem` sent as `application/problem+json`.
#[derive(Clone, Debug)]
pub struct ProblemJson(pub Problem);

impl Payload for ProblemJson {
    const CONTENT_TYPE: &'static str = PROBLEM_CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        Problem::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.0.to_json_string();
        let mut response = Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(body);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.0.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The crate-wide type of unexpected failures: always a 500 whose body says nothing about the
/// cause, while the whole cause chain goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Core(#[from] crate::core::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::infra::metrics::RenderError> for InternalError {
    fn from(error: crate::infra::metrics::RenderError) -> Self {
        Self::Other(error.into())
    }
}

impl From<sea_orm::DbErr> for InternalError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Core(error.into())
    }
}

impl poem::error::ResponseError for InternalError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn as_response(&self) -> Response {
        tracing::error!(error = %error_chain(self), "request failed");
        ProblemJson(Problem::internal()).into_response()
    }
}

impl ApiResponse for InternalError {
    fn meta() -> MetaResponses {
        InternalAnswer::meta()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// The answers many operations share, each declared once, here. An operation returns
/// `Result<ItsOwnResponse, ApiError<S>>`: its own enum holds the outcomes that are its own, and
/// `S` (one of the `Shares` kinds below) names which shared answers it can also give, so the
/// spec lists exactly those. `?` reaches them from a limit, the hashing queue or a failure.
pub struct ApiError<S> {
    answer: SharedAnswer,
    shares: PhantomData<fn() -> S>,
}

enum SharedAnswer {
    Unauthorized,
    RateLimited(Limited),
    Overloaded,
    Internal(InternalError),
}

/// One of the answers `ApiError` can declare, in the order the spec lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// 400 `invalid_request`, which the framework answers for a malformed body. Not for an
    /// operation whose own 400 says more (`invalid_code`).
    InvalidRequest,
    /// 401 `unauthorized` with its `WWW-Authenticate` challenge.
    Unauthorized,
    /// 503 `overloaded`, for operations that hash a password.
    Overloaded,
    /// 429 `rate_limited` with its three headers.
    RateLimited,
    /// 413 and 415, which the body limit and the framework answer before the handler runs.
    JsonBody,
}

/// Which shared answers an operation can give, besides the 500 every one can.
pub trait Shares {
    const ANSWERS: &'static [Shared];
}

/// A JSON operation anyone may call, under a per-IP quota: `signup`, `resend_signup_code`,
/// `forgot_password`, `refresh_token`.
pub enum Public {}
/// `login`: `Public`, and it hashes.
pub enum PublicHashing {}
/// `check_reset_code`: `Public`, but its own 400 is `invalid_code` (which names the malformed
/// body too).
pub enum CodeCheck {}
/// `verify_signup`, `reset_password`: `CodeCheck`, and they hash.
pub enum CodeCheckHashing {}
/// An operation that needs an access token and takes no JSON body.
pub enum SignedIn {}
/// `change_password`: signed in, a JSON body, a per-IP quota, and it hashes.
pub enum SignedInHashing {}

impl Shares for Public {
    const ANSWERS: &'static [Shared] = &[
        Shared::InvalidRequest,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}
impl Shares for PublicHashing {
    const ANSWERS: &'static [Shared] = &[
        Shared::InvalidRequest,
        Shared::Overloaded,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}
impl Shares for CodeCheck {
    const ANSWERS: &'static [Shared] = &[Shared::RateLimited, Shared::JsonBody];
}
impl Shares for CodeCheckHashing {
    const ANSWERS: &'static [Shared] = &[Shared::Overloaded, Shared::RateLimited, Shared::JsonBody];
}
impl Shares for SignedIn {
    const ANSWERS: &'static [Shared] = &[Shared::Unauthorized];
}
impl Shares for SignedInHashing {
    const ANSWERS: &'static [Shared] = &[
        Shared::InvalidRequest,
        Shared::Unauthorized,
        Shared::Overloaded,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}

impl<S> ApiError<S> {
    fn new(answer: SharedAnswer) -> Self {
        Self {
            answer,
            shares: PhantomData,
        }
    }

    /// 401: the access token's session or account is gone.
    pub fn unauthorized() -> Self {
        Self::new(SharedAnswer::Unauthorized)
    }
}

impl<S> From<crate::core::Error> for ApiError<S> {
    fn from(error: crate::core::Error) -> Self {
        Self::new(match error {
            crate::core::Error::Limited(limited) => SharedAnswer::RateLimited(limited),
            crate::core::Error::Overloaded => SharedAnswer::Overloaded,
            other => SharedAnswer::Internal(other.into()),
        })
    }
}

impl<S> From<Limited> for ApiError<S> {
    fn from(limited: Limited) -> Self {
        Self::new(SharedAnswer::RateLimited(limited))
    }
}

impl<S> fmt::Debug for ApiError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.answer {
            SharedAnswer::Unauthorized => f.write_str("Unauthorized"),
            SharedAnswer::RateLimited(limited) => write!(f, "RateLimited({limited:?})"),
            SharedAnswer::Overloaded => f.write_str("Overloaded"),
            SharedAnswer::Internal(error) => write!(f, "Internal({error:?})"),
        }
    }
}

impl<S> IntoResponse for ApiError<S> {
    fn into_response(self) -> Response {
        match self.answer {
            SharedAnswer::Unauthorized => UnauthorizedAnswer::Unauthorized(
                ProblemJson(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    ProblemCode::Unauthorized,
                    UNAUTHORIZED_DETAIL.to_owned(),
                )),
                "Bearer".to_owned(),
            )
            .into_response(),
            SharedAnswer::RateLimited(limited) => RateLimitedAnswer::RateLimited(
                ProblemJson(Problem::rate_limited(&limited)),
                limited.retry_after,
                limited.policy_header(),
                limited.state_header(),
            )
            .into_response(),
            SharedAnswer::Overloaded => {
                let problem = Problem::overloaded();
                let retry = problem.retry_after.unwrap_or(1);
                OverloadedAnswer::Overloaded(ProblemJson(problem), retry).into_response()
            }
            SharedAnswer::Internal(error) => poem::error::ResponseError::as_response(&error),
        }
    }
}

impl<S> From<ApiError<S>> for poem::Error {
    fn from(error: ApiError<S>) -> Self {
        // A ready answer: `error_to_problem` passes it through as it is.
        poem::Error::from_response(error.into_response())
    }
}

impl<S: Shares> ApiResponse for ApiError<S> {
    fn meta() -> MetaResponses {
        let mut responses = Vec::new();
        for shared in S::ANSWERS {
            let meta = match shared {
                Shared::InvalidRequest => InvalidRequestAnswer::meta(),
                Shared::Unauthorized => UnauthorizedAnswer::meta(),
                Shared::Overloaded => OverloadedAnswer::meta(),
                Shared::RateLimited => RateLimitedAnswer::meta(),
                Shared::JsonBody => JsonBodyAnswer::meta(),
            };
            responses.extend(meta.responses);
        }
        responses.extend(InternalAnswer::meta().responses);
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// What the bearer check says when it refuses a token.
pub const UNAUTHORIZED_DETAIL: &str = "The access token is missing, unknown, expired or revoked.";

// The shared answers as the spec shows them; `ApiError` declares and builds them.

// Declared for the spec only: the framework answers these before any handler runs.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum InvalidRequestAnswer {
    /// `invalid_request`: the body is not JSON, or a field is missing or not a string.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
}

#[derive(ApiResponse)]
enum UnauthorizedAnswer {
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
enum OverloadedAnswer {
    /// `overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Overloaded(
        ProblemJson,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

#[derive(ApiResponse)]
enum RateLimitedAnswer {
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

// Declared for the spec only: the body limit and the framework answer these.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum JsonBodyAnswer {
    /// `payload_too_large`: the body is larger than `CODEWARD_MAX_BODY_BYTES` (16 KiB by default); it was not read.
    #[oai(status = 413)]
    PayloadTooLarge(ProblemJson),
    /// `unsupported_media_type`: the body is not sent as `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(ProblemJson),
}

// Declared for the spec only: `InternalError` builds this answer itself, after logging.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum InternalAnswer {
    /// An unexpected failure; the body is generic and the cause is logged.
    #[oai(status = 500)]
    Internal(ProblemJson),
}

/// `error: cause: cause`, for one log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns any error that reached the outside of the app into a problem+json response.
pub async fn error_to_problem(error: poem::Error) -> Response {
    if error.is_from_response() || error.is::<InternalError>() {
        return error.into_response();
    }
    let status = error.status();
    let code = match status {
        StatusCode::NOT_FOUND => ProblemCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ProblemCode::Unauthorized,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemCode::ValidationFailed,
        StatusCode::TOO_MANY_REQUESTS => ProblemCode::RateLimited,
        s if s.is_client_error() => ProblemCode::InvalidRequest,
        _ => ProblemCode::InternalError,
    };
    if status.is_server_error() {
        tracing::error!(error = %error_chain(&error), %status, "request failed");
        let mut problem = Problem::internal();
        problem.status = status.as_u16();
        return ProblemJson(problem).into_response();
    }
    // The framework's messages describe the request's shape ("missing field `email`"), never
    // a value from it, so they are safe and useful to return.
    let detail = match code {
        ProblemCode::NotFound => "No such path.".to_owned(),
        ProblemCode::MethodNotAllowed => "This path does not accept this HTTP method.".to_owned(),
        _ => error.to_string(),
    };
    ProblemJson(Problem::new(status, code, detail)).into_response()
}

/// The response to a panic inside a handler: a generic 500, the panic message only in the log.
pub fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    ProblemJson(Problem::internal()).into_response()
}

impl ProblemJson {
    /// 422 `validation_failed`, one `errors[]` entry per refused field.
    pub fn validation(problems: Vec<FieldProblem>) -> Self {
        Self(Problem::validation(problems))
    }

    /// 400 `invalid_code`.
    pub fn invalid_code() -> Self {
        Self(Problem::invalid_code())
    }
}

/// Collects the refusals of a request's fields, so one 422 names all of them.
#[derive(Default)]
pub struct FieldCheck(Vec<FieldProblem>);

impl FieldCheck {
    /// The parsed value, or `None` with its refusal noted.
    pub fn check<T>(&mut self, parsed: Result<T, FieldProblem>) -> Option<T> {
        parsed.map_err(|problem| self.0.push(problem)).ok()
    }

    /// Whether every field checked so far was accepted.
    pub fn passed(&self) -> bool {
        self.0.is_empty()
    }

    /// The 422 naming every refused field.
    pub fn into_problem(self) -> ProblemJson {
        ProblemJson::validation(self.0)
    }
}
