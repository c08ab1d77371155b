//! Tag `account`, email change: ask for a code at the new address, then verify it.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::email_change::{self, RequestEmailChange, VerifyEmailChange};
use crate::core::limits::Group;
use crate::domain::{self, EmailAddress, OtpCode};
use crate::http::auth::BearerAuth;
use crate::http::body::JsonBody;
use crate::http::middleware::{equal_time, wake_outbox};
use crate::http::problem::{
    ApiError, FieldCheck, Problem, ProblemCode, ProblemJson, SignedInCodeCheck, SignedInRecentJson,
};
use crate::http::schemas::{CodePurpose, CodeSentResponse, EXAMPLE_CODE, User};
use crate::http::types::{CodeText, EmailText, OptionalText};
use crate::http::{ApiTags, AppState, guard};

pub struct EmailChangeApi;

/// Ask to move the account to a new address.
#[derive(Object)]
#[oai(example)]
pub struct EmailChangeRequest {
    /// The address to move to (at most 254 characters).
    pub new_email: EmailText,
    /// BCP 47 language tag for the code email, e.g. `es-MX`; defaults to the account's.
    pub locale: Option<OptionalText>,
}

impl Example for EmailChangeRequest {
    fn example() -> Self {
        Self {
            new_email: EmailText("new.ada@example.com".to_owned()),
            locale: None,
        }
    }
}

/// The code sent to the new address.
#[derive(Object)]
#[oai(example)]
pub struct VerifyEmailChangeRequest {
    /// The six-digit code from the email to the new address.
    pub code: CodeText,
}

impl Example for VerifyEmailChangeRequest {
    fn example() -> Self {
        Self {
            code: CodeText(EXAMPLE_CODE.to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum VerifyEmailChangeResponse {
    /// The account has the new address, verified; sessions stay, and the old address got a
    /// notice naming the new one masked.
    #[oai(status = 200)]
    Changed(Json<User>),
    /// `invalid_code`: wrong, expired, used or no code; one answer for all. (`invalid_request`
    /// when the body is not JSON, or `code` is missing or not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// `email_taken`: another account took the address since the code was sent.
    #[oai(status = 409)]
    EmailTaken(ProblemJson),
}

impl TryFrom<VerifyEmailChange> for VerifyEmailChangeResponse {
    type Error = ApiError<SignedInCodeCheck>;

    fn try_from(outcome: VerifyEmailChange) -> Result<Self, Self::Error> {
        Ok(match outcome {
            VerifyEmailChange::Changed(account) => Self::Changed(Json(account.into())),
            VerifyEmailChange::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
            VerifyEmailChange::EmailTaken => Self::EmailTaken(ProblemJson(Problem::new(
                StatusCode::CONFLICT,
                ProblemCode::EmailTaken,
                "Another account has this address now.".to_owned(),
            ))),
            VerifyEmailChange::SignedOut => return Err(ApiError::unauthorized()),
        })
    }
}

#[OpenApi(tag = "ApiTags::Account")]
impl EmailChangeApi {
    /// Ask to change the address
    ///
    /// Emails a six-digit `change_email` code to the new address (older ones die). When
    /// another account has that address, it gets an "address taken" notice instead and no
    /// code, with the same 202. Needs a recent authentication.
    #[oai(
        path = "/v1/me/email",
        method = "post",
        operation_id = "request_email_change",
        transform = "equal_time"
    )]
    async fn request_email_change(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<EmailChangeRequest>,
    ) -> Result<CodeSentResponse, ApiError<SignedInRecentJson>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        let mut fields = FieldCheck::default();
        let new_email = fields.check(EmailAddress::parse(&body.new_email));
        let locale = match body.locale.as_deref() {
            Some(raw) => fields.check(domain::parse_locale(Some(raw))),
            None => None,
        };
        let (Some(new_email), true) = (new_email, fields.passed()) else {
            return Ok(CodeSentResponse::ValidationFailed(fields.into_problem()));
        };
        let outcome = email_change::request_email_change(
            &state,
            &auth.0,
            &new_email,
            locale.as_deref(),
            &requester,
        )
        .await?;
        match outcome {
            RequestEmailChange::Sent => Ok(CodeSentResponse::accepted(
                &state,
                &new_email,
                CodePurpose::ChangeEmail,
            )),
            RequestEmailChange::SignedOut => Err(ApiError::unauthorized()),
        }
    }

    /// Verify the new address
    ///
    /// Checks the code sent to the new address and switches the account to it (verified).
    /// Sessions stay; the old address gets a notice naming the new one masked. A wrong code
    /// counts as an attempt.
    #[oai(
        path = "/v1/me/email/verify",
        method = "post",
        operation_id = "verify_email_change",
        transform = "wake_outbox"
    )]
    async fn verify_email_change(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<VerifyEmailChangeRequest>,
    ) -> Result<VerifyEmailChangeResponse, ApiError<SignedInCodeCheck>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let code = OtpCode::parse(&body.code);
        let outcome = email_change::verify_email_change(&state, &auth.0, code, &requester).await?;
        outcome.try_into()
    }
}
