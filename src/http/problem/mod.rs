//! RFC 9457 problem details: the one shape of every error codeward returns, including the
//! framework's own (unknown path, wrong method, malformed JSON, oversized body, panics).

mod internal;
mod parameters;
mod shared;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ToJSON, Type};
use poem_openapi::{Enum, Object, payload::Payload};

pub use internal::{InternalError, error_to_problem, panic_to_problem};
pub use shared::{
    ApiError, CHALLENGE, CHALLENGE_INVALID_TOKEN, CodeCheck, CodeCheckHashing, Keyed, KeyedForm,
    Public, PublicHashing, Shared, Shares, SignedIn, SignedInCodeCheck, SignedInCodeCheckHashing,
    SignedInHashing, SignedInHashingRecent, SignedInLimited, SignedInRecent, SignedInRecentJson,
    UNAUTHORIZED_DETAIL,
};

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
    /// Missing, unknown, expired or revoked access token or API key.
    Unauthorized,
    /// Unknown email or wrong password.
    InvalidCredentials,
    /// Unknown, expired, revoked or replayed refresh token.
    InvalidToken,
    /// Current password wrong on an authenticated change.
    WrongPassword,
    /// The API key lacks the scope the operation needs.
    Forbidden,
    /// The operation needs a sign-in or re-authentication more recent than the window.
    ReauthenticationRequired,
    /// Unknown path, or a resource this user does not have.
    NotFound,
    /// The path exists but not with this HTTP method.
    MethodNotAllowed,
    /// An email change whose new address another account took meanwhile.
    EmailTaken,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// The request body is not of the media type the operation takes.
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
            Self::Forbidden => "forbidden",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::EmailTaken => "email_taken",
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
            Self::Forbidden => "The API key may not do this",
            Self::ReauthenticationRequired => "A more recent authentication is required",
            Self::EmailTaken => "The email address is taken",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The request body's media type is not supported",
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
    /// The fields at fault, as the client wrote them: those that failed validation (422), or
    /// the body members and parameters a 400 `invalid_request` is about (missing, of the wrong
    /// JSON type, malformed).
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

    /// 400 `invalid_request`: the request's shape is wrong; `errors` names the members and
    /// parameters at fault, when there are any to name.
    pub fn invalid_request(detail: String, errors: Vec<FieldError>) -> Self {
        let mut problem = Self::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidRequest, detail);
        if !errors.is_empty() {
            problem.errors = Some(errors);
        }
        problem
    }

    /// 401 `unauthorized`: one wording for a credential that is missing and one that is not
    /// valid; the `WWW-Authenticate` challenge tells them apart.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ProblemCode::Unauthorized,
            UNAUTHORIZED_DETAIL.to_owned(),
        )
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
            // The challenge for a request that sent no credential; a refused credential's
            // answer (`ProblemJson::invalid_credential`) replaces it.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        if let Some(seconds) = self.0.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
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

    /// 400 `invalid_request` for a `cursor` parameter this server did not give out.
    pub fn bad_cursor() -> Self {
        let message = "cursor is not one this server gave out.".to_owned();
        let field = FieldError {
            field: "cursor".to_owned(),
            code: "invalid_value".to_owned(),
            message: message.clone(),
        };
        Self(Problem::invalid_request(message, vec![field]))
    }

    /// The 401 for a credential that was sent but is not valid: an error for a security
    /// scheme's checker to return.
    pub fn invalid_credential() -> poem::Error {
        let mut response = Self(Problem::unauthorized()).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE_INVALID_TOKEN),
        );
        poem::Error::from_response(response)
    }
}

/// Collects the refusals of a request's fields, so one 422 names all of them.
#[derive(Default)]
pub struct FieldCheck(Vec<FieldProblem>);

impl FieldCheck {
    /// The one field of a request, or the 422 naming its refusal.
    pub fn one<T>(parsed: Result<T, FieldProblem>) -> Result<T, ProblemJson> {
        parsed.map_err(|problem| ProblemJson::validation(vec![problem]))
    }

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
