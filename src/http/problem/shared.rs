//! The answers many operations share, declared once: 400 `invalid_request`, 401
//! `unauthorized`, 403 `forbidden`, 429 `rate_limited`, 503 `overloaded`, 413, 415 and 500.

use std::fmt;
use std::marker::PhantomData;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::Type;

use crate::core::limits::Limited;
use crate::domain::Scope;
use crate::http::problem::{InternalError, Problem, ProblemCode, ProblemJson};

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
    ReauthenticationRequired,
    Forbidden(Scope),
    RateLimited(Limited),
    Overloaded,
    Internal(InternalError),
}

/// One of the answers `ApiError` can declare, in the order the spec lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shared {
    /// 400 `invalid_request`, which the framework answers for a malformed body. Not for an
    /// operation whose own 400 says more (`invalid_code`).
    InvalidRequest,
    /// 401 `unauthorized` with its `WWW-Authenticate` challenge.
    Unauthorized,
    /// 401 `unauthorized` for a missing, unknown or revoked API key, and 403 `forbidden` for
    /// one without the operation's scope.
    ApiKey,
    /// 403 `reauthentication_required`, for operations that need a recent authentication.
    RecentAuthentication,
    /// 403 `reauthentication_required` for an operation whose own 403 answers another code too
    /// and says so (`change_password`): answered here, declared there, as one status may be
    /// declared only once.
    RecentAuthenticationInOwn403,
    /// 503 `overloaded`, for operations that hash a password.
    Overloaded,
    /// 429 `rate_limited` with its three headers.
    RateLimited,
    /// 413 and 415, which the body limit and the framework answer before the handler runs.
    JsonBody,
    /// 400 `invalid_request` for a form body the framework cannot read (a field missing).
    InvalidForm,
    /// 413 and 415 for an operation taking a form body.
    FormBody,
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
/// `verify_email_change`: signed in, a JSON body, a per-IP quota, and its own 400 is
/// `invalid_code`.
pub enum SignedInCodeCheck {}
/// An operation that needs an API key with a scope and takes a form body: `introspect_token`.
pub enum KeyedForm {}
/// An operation that needs an API key with a scope and takes no body: the admin API.
pub enum Keyed {}
/// An operation that needs an access token whose session authenticated recently, and takes
/// no JSON body: `delete_account`.
pub enum SignedInRecent {}
/// `SignedInRecent` with a JSON body and a per-IP quota: `request_email_change`.
pub enum SignedInRecentJson {}
/// `change_password`: `SignedInHashing`, and without `current_password` it needs a recent
/// authentication.
pub enum SignedInHashingRecent {}
/// `reauthenticate`: signed in, a JSON body, a per-IP quota, it hashes, and its own 400 is
/// `invalid_code` (which names the malformed body too).
pub enum SignedInCodeCheckHashing {}
/// `request_reauth_code`: signed in, no body, a per-IP and per-address quota.
pub enum SignedInLimited {}

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

impl Shares for SignedInCodeCheck {
    const ANSWERS: &'static [Shared] =
        &[Shared::Unauthorized, Shared::RateLimited, Shared::JsonBody];
}

impl Shares for SignedInRecent {
    const ANSWERS: &'static [Shared] = &[Shared::Unauthorized, Shared::RecentAuthentication];
}
impl Shares for SignedInRecentJson {
    const ANSWERS: &'static [Shared] = &[
        Shared::InvalidRequest,
        Shared::Unauthorized,
        Shared::RecentAuthentication,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}

impl Shares for SignedInHashingRecent {
    const ANSWERS: &'static [Shared] = &[
        Shared::InvalidRequest,
        Shared::Unauthorized,
        Shared::RecentAuthenticationInOwn403,
        Shared::Overloaded,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}
impl Shares for SignedInCodeCheckHashing {
    const ANSWERS: &'static [Shared] = &[
        Shared::Unauthorized,
        Shared::Overloaded,
        Shared::RateLimited,
        Shared::JsonBody,
    ];
}
impl Shares for SignedInLimited {
    const ANSWERS: &'static [Shared] = &[Shared::Unauthorized, Shared::RateLimited];
}

impl Shares for Keyed {
    const ANSWERS: &'static [Shared] = &[Shared::ApiKey];
}

impl Shares for KeyedForm {
    const ANSWERS: &'static [Shared] = &[Shared::InvalidForm, Shared::ApiKey, Shared::FormBody];
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

    /// 403: the API key lacks `scope`, which the operation needs.
    pub fn forbidden(scope: Scope) -> Self {
        Self::new(SharedAnswer::Forbidden(scope))
    }
}

impl<S> From<crate::core::Error> for ApiError<S> {
    fn from(error: crate::core::Error) -> Self {
        Self::new(match error {
            crate::core::Error::Limited(limited) => SharedAnswer::RateLimited(limited),
            crate::core::Error::Overloaded => SharedAnswer::Overloaded,
            crate::core::Error::ReauthenticationRequired => SharedAnswer::ReauthenticationRequired,
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
            SharedAnswer::ReauthenticationRequired => f.write_str("ReauthenticationRequired"),
            SharedAnswer::Forbidden(scope) => write!(f, "Forbidden({scope:?})"),
            SharedAnswer::RateLimited(limited) => write!(f, "RateLimited({limited:?})"),
            SharedAnswer::Overloaded => f.write_str("Overloaded"),
            SharedAnswer::Internal(error) => write!(f, "Internal({error:?})"),
        }
    }
}

impl SharedAnswer {
    /// Which declaration this answer needs (a 500 needs none: every operation declares it).
    fn declared_as(&self) -> Option<Shared> {
        match self {
            Self::Unauthorized => Some(Shared::Unauthorized),
            Self::ReauthenticationRequired => Some(Shared::RecentAuthentication),
            Self::Forbidden(_) => Some(Shared::ApiKey),
            Self::RateLimited(_) => Some(Shared::RateLimited),
            Self::Overloaded => Some(Shared::Overloaded),
            Self::Internal(_) => None,
        }
    }
}

impl<S: Shares> IntoResponse for ApiError<S> {
    fn into_response(self) -> Response {
        // The type says what the spec promises; an answer outside it is a bug the tests catch.
        if let Some(kind) = self.answer.declared_as() {
            let declared = S::ANSWERS.contains(&kind)
                || (kind == Shared::RecentAuthentication
                    && S::ANSWERS.contains(&Shared::RecentAuthenticationInOwn403));
            debug_assert!(
                declared,
                "an operation answered {kind:?}, which its spec does not declare"
            );
        }
        match self.answer {
            // A handler answers it for a token that was sent: its session or account is gone.
            SharedAnswer::Unauthorized => UnauthorizedAnswer::Unauthorized(
                ProblemJson(Problem::unauthorized()),
                CHALLENGE_INVALID_TOKEN.to_owned(),
            )
            .into_response(),
            SharedAnswer::ReauthenticationRequired => {
                RecentAuthenticationAnswer::ReauthenticationRequired(ProblemJson(Problem::new(
                    StatusCode::FORBIDDEN,
                    ProblemCode::ReauthenticationRequired,
                    "Sign in again or re-authenticate (the reauthenticate operation), then retry."
                        .to_owned(),
                )))
                .into_response()
            }
            SharedAnswer::Forbidden(scope) => ApiKeyAnswer::Forbidden(ProblemJson(Problem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::Forbidden,
                format!("This API key does not have the {} scope.", scope.name()),
            )))
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

impl<S: Shares> From<ApiError<S>> for poem::Error {
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
                Shared::ApiKey => ApiKeyAnswer::meta(),
                Shared::RecentAuthentication => RecentAuthenticationAnswer::meta(),
                Shared::RecentAuthenticationInOwn403 => MetaResponses {
                    responses: Vec::new(),
                },
                Shared::Overloaded => OverloadedAnswer::meta(),
                Shared::RateLimited => RateLimitedAnswer::meta(),
                Shared::JsonBody => JsonBodyAnswer::meta(),
                Shared::InvalidForm => InvalidFormAnswer::meta(),
                Shared::FormBody => FormBodyAnswer::meta(),
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

/// What every 401 `unauthorized` says, whichever credential the operation takes and whether
/// one was sent: the `WWW-Authenticate` challenge is what tells those cases apart.
pub const UNAUTHORIZED_DETAIL: &str =
    "The access token or API key is missing, malformed, unknown, expired or revoked.";

/// The challenge of a 401 to a request that sent no bearer credential (RFC 6750, section 3).
pub const CHALLENGE: &str = "Bearer";

/// The challenge of a 401 to a request whose bearer credential is not valid (RFC 6750,
/// section 3.1): the client should refresh its access token, or sign in again.
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

// The shared answers as the spec shows them; `ApiError` declares and builds them.

// Declared for the spec only: the framework answers these before any handler runs.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum InvalidRequestAnswer {
    /// `invalid_request`: the body is not JSON, or a member is missing or of the wrong JSON
    /// type, or a parameter is malformed; `errors` names each member or parameter at fault.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
}

#[derive(ApiResponse)]
enum UnauthorizedAnswer {
    /// `unauthorized`: the access token is missing, malformed, unknown, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// `Bearer` when the request sent no access token; `Bearer error="invalid_token"` when
        /// the one it sent is not valid (refresh it, or sign in again).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

#[derive(ApiResponse)]
enum RecentAuthenticationAnswer {
    /// `reauthentication_required`: the session's latest sign-in or re-authentication is older
    /// than `CODEWARD_REAUTH_MAX_AGE_SECS` (600 s by default); `reauthenticate`, then retry.
    #[oai(status = 403)]
    ReauthenticationRequired(ProblemJson),
}

// The 401 is declared for the spec only: the API-key check answers it before the handler runs.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum ApiKeyAnswer {
    /// `unauthorized`: the API key is missing, malformed, unknown or revoked (an access token
    /// is never accepted as one).
    #[oai(status = 401)]
    Unauthorized(
        ProblemJson,
        /// `Bearer` when the request sent no key; `Bearer error="invalid_token"` when the one
        /// it sent is not valid.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `forbidden`: the API key does not have the scope this operation needs.
    #[oai(status = 403)]
    Forbidden(ProblemJson),
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

// Declared for the spec only: the framework answers these before any handler runs.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum InvalidFormAnswer {
    /// `invalid_request`: the form lacks a required field; `errors` names it.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
}

// Declared for the spec only: the body limit and the framework answer these.
#[allow(dead_code)]
#[derive(ApiResponse)]
enum FormBodyAnswer {
    /// `payload_too_large`: the body is larger than `CODEWARD_MAX_BODY_BYTES` (16 KiB by default); it was not read.
    #[oai(status = 413)]
    PayloadTooLarge(ProblemJson),
    /// `unsupported_media_type`: the body is not sent as `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(ProblemJson),
}

// Declared for the spec only: `InternalError` builds this answer itself, after logging.
#[allow(dead_code)]
#[derive(ApiResponse)]
pub(super) enum InternalAnswer {
    /// An unexpected failure; the body is generic and the cause is logged.
    #[oai(status = 500)]
    Internal(ProblemJson),
}
