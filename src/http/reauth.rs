//! Tag `session`, re-authentication: renew the session's `auth_time` with the password or a
//! `reauthenticate` code, for the operations that need a recent authentication.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::reauth::{self, Proof, Reauthenticate, RequestReauthCode};
use crate::core::limits::Group;
use crate::domain::{FieldProblem, OtpCode, PasswordAttempt};
use crate::http::auth::BearerAuth;
use crate::http::body::JsonBody;
use crate::http::middleware::wake_outbox;
use crate::http::problem::{
    ApiError, FieldCheck, Problem, ProblemCode, ProblemJson, SignedInCodeCheckHashing,
    SignedInLimited,
};
use crate::http::schemas::{CodePurpose, CodeSent, EXAMPLE_PASSWORD, SessionBody};
use crate::http::types::{CodeText, SecretText};
use crate::http::{ApiTags, AppState, guard};

pub struct ReauthApi;

/// Prove again who you are: exactly one of `password` or `code`.
#[derive(Object)]
#[oai(example)]
pub struct ReauthenticateRequest {
    /// The account's password.
    #[oai(skip_serializing_if_is_none)]
    pub password: Option<SecretText>,
    /// The six-digit code `request_reauth_code` emailed.
    #[oai(skip_serializing_if_is_none)]
    pub code: Option<CodeText>,
}

impl Example for ReauthenticateRequest {
    fn example() -> Self {
        Self {
            password: Some(SecretText(EXAMPLE_PASSWORD.to_owned())),
            code: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum RequestReauthCodeResponse {
    /// A `reauthenticate` code is on its way to the account's address.
    #[oai(status = 202)]
    Accepted(Json<CodeSent>),
}

#[derive(ApiResponse)]
pub enum ReauthenticateResponse {
    /// The same session (same `session_id`), authenticated now: a new access token whose
    /// `auth_time` is now and whose `amr` names the proof, and a new refresh token. The
    /// previous refresh token is used up, as by `refresh_token`.
    #[oai(status = 200)]
    Renewed(Json<SessionBody>),
    /// `invalid_code`: wrong, expired, used, locked or unknown code; one answer for all.
    /// (`invalid_request` when the body is not JSON, or a field is not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// `wrong_password`: the password is wrong. Counted per account like a wrong current
    /// password at `change_password`: past the free failures, each further attempt waits
    /// (429 `rate_limited`).
    #[oai(status = 403)]
    WrongPassword(ProblemJson),
    /// Not exactly one of `password` and `code`, or a malformed password; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl TryFrom<Reauthenticate> for ReauthenticateResponse {
    type Error = ApiError<SignedInCodeCheckHashing>;

    fn try_from(outcome: Reauthenticate) -> Result<Self, Self::Error> {
        Ok(match outcome {
            Reauthenticate::Renewed(session) => Self::Renewed(Json(session.into())),
            Reauthenticate::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
            Reauthenticate::WrongPassword => Self::WrongPassword(ProblemJson(Problem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::WrongPassword,
                "The password is wrong.".to_owned(),
            ))),
            Reauthenticate::SignedOut => return Err(ApiError::unauthorized()),
        })
    }
}

/// The one proof a request gives, or the 422 naming the fields when it gives both or neither.
fn proof(body: &ReauthenticateRequest) -> Result<Proof, ProblemJson> {
    match (body.password.as_deref(), body.code.as_deref()) {
        (Some(password), None) => {
            FieldCheck::one(PasswordAttempt::parse(password, "password")).map(Proof::Password)
        }
        (None, Some(code)) => Ok(Proof::Code(OtpCode::parse(code))),
        (given_password, _) => {
            let (code, message) = if given_password.is_some() {
                ("conflict", "Give either password or code, not both.")
            } else {
                ("required", "Give password or code.")
            };
            let problem = |field| FieldProblem {
                field,
                code,
                message: message.to_owned(),
            };
            Err(ProblemJson(Problem::validation(vec![
                problem("password"),
                problem("code"),
            ])))
        }
    }
}

#[OpenApi(tag = "ApiTags::Session")]
impl ReauthApi {
    /// Ask for a re-authentication code
    ///
    /// Emails a six-digit `reauthenticate` code to the signed-in account's own address (its
    /// older `reauthenticate` codes die), under the address's resend cooldown and hourly cap
    /// like every code request. For `reauthenticate` when the account has no password or the
    /// user prefers a code.
    #[oai(
        path = "/v1/reauth/code",
        method = "post",
        operation_id = "request_reauth_code",
        transform = "wake_outbox"
    )]
    async fn request_reauth_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
    ) -> Result<RequestReauthCodeResponse, ApiError<SignedInLimited>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        match reauth::request_reauth_code(&state, &auth.0, &requester).await? {
            RequestReauthCode::Sent(email) => Ok(RequestReauthCodeResponse::Accepted(Json(
                CodeSent::new(&state, &email, CodePurpose::Reauthenticate),
            ))),
            RequestReauthCode::SignedOut => Err(ApiError::unauthorized()),
        }
    }

    /// Re-authenticate
    ///
    /// Proves again who the signed-in user is, with the account's `password` or a `code` from
    /// `request_reauth_code` (exactly one of them). The session stays the same; its
    /// `auth_time` becomes now, so the operations that need a recent authentication
    /// (`CODEWARD_REAUTH_MAX_AGE_SECS`) work again, and it answers a rotated pair.
    #[oai(path = "/v1/reauth", method = "post", operation_id = "reauthenticate")]
    async fn reauthenticate(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<ReauthenticateRequest>,
    ) -> Result<ReauthenticateResponse, ApiError<SignedInCodeCheckHashing>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let proof = match proof(&body) {
            Ok(proof) => proof,
            Err(refused) => return Ok(ReauthenticateResponse::ValidationFailed(refused)),
        };
        let outcome = reauth::reauthenticate(&state, &auth.0, proof, &requester).await?;
        outcome.try_into()
    }
}
