//! Tag `session`: sign in with an emailed code instead of a password.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::login_code::{self, VerifyLoginCode};
use crate::core::limits::Group;
use crate::domain::{self, EmailAddress, OtpCode};
use crate::http::body::JsonBody;
use crate::http::middleware::equal_time;
use crate::http::problem::{ApiError, CodeCheck, FieldCheck, ProblemJson, Public};
use crate::http::schemas::{
    CodePurpose, CodeSentResponse, EXAMPLE_CODE, EXAMPLE_EMAIL, SessionBody,
};
use crate::http::types::{CodeText, EmailText, OptionalText};
use crate::http::{ApiTags, AppState, guard};

pub struct LoginCodeApi;

/// Ask for a sign-in code.
#[derive(Object)]
#[oai(example)]
pub struct LoginCodeRequest {
    /// The account's address.
    pub email: EmailText,
    /// BCP 47 language tag for the email of a new account, e.g. `es-MX`; defaults to `en`.
    /// An existing account gets its emails in its own language.
    pub locale: Option<OptionalText>,
    /// Whether an address without an account may get one: verifying the code then creates a
    /// verified account without a password (while sign-ups are open). Defaults to `false`:
    /// such an address gets nothing.
    pub create_account: poem_openapi::types::MaybeUndefined<bool>,
}

impl Example for LoginCodeRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            locale: Some(OptionalText("en".to_owned())),
            create_account: poem_openapi::types::MaybeUndefined::Value(true),
        }
    }
}

/// Sign in with the emailed code.
#[derive(Object)]
#[oai(example)]
pub struct VerifyLoginCodeRequest {
    /// The address the code was requested for.
    pub email: EmailText,
    /// The six-digit code from the email.
    pub code: CodeText,
    /// A name for this device in the session list, e.g. `Ada's iPhone` (at most 128
    /// characters, no control or bidirectional-text characters).
    pub device_name: Option<OptionalText>,
}

impl Example for VerifyLoginCodeRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            code: CodeText(EXAMPLE_CODE.to_owned()),
            device_name: Some(OptionalText("Ada's iPhone".to_owned())),
        }
    }
}

#[derive(ApiResponse)]
pub enum VerifyLoginCodeResponse {
    /// The user is signed in; the access token says `amr: ["otp"]`.
    #[oai(status = 200)]
    SignedIn(Json<SessionBody>),
    /// `invalid_code`: wrong, expired, used, locked or unknown code, or no code for this
    /// address; one answer for all. (`invalid_request` when the body is not JSON, or a field
    /// is missing or not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// The email address or device name is not acceptable; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl From<VerifyLoginCode> for VerifyLoginCodeResponse {
    fn from(outcome: VerifyLoginCode) -> Self {
        match outcome {
            VerifyLoginCode::SignedIn(session) => Self::SignedIn(Json(session.into())),
            VerifyLoginCode::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
        }
    }
}

#[OpenApi(tag = "ApiTags::Session")]
impl LoginCodeApi {
    /// Ask for a sign-in code
    ///
    /// Emails a six-digit `login` code to the account of this address, verified or not (a
    /// repeated request past the cooldown re-sends or replaces it). An address without an
    /// account gets a code only with `create_account: true` while sign-ups are open;
    /// verifying it creates a verified account without a password. Otherwise nothing is sent.
    /// The answer is the same 202 for every address.
    #[oai(
        path = "/v1/login/code",
        method = "post",
        operation_id = "request_login_code",
        transform = "equal_time"
    )]
    async fn request_login_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<LoginCodeRequest>,
    ) -> Result<CodeSentResponse, ApiError<Public>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        let locale = fields.check(domain::parse_locale(body.locale.as_deref()));
        // `true`, `false` or absent; null is not a boolean.
        let create_account = fields.check(match body.create_account {
            poem_openapi::types::MaybeUndefined::Null => Err(domain::FieldProblem {
                field: "create_account",
                code: "invalid",
                message: "create_account is true, false or absent, never null.".to_owned(),
            }),
            ref given => Ok(given.value().copied().unwrap_or(false)),
        });
        let (Some(email), Some(locale), Some(create_account), true) =
            (email, locale, create_account, fields.passed())
        else {
            return Ok(CodeSentResponse::ValidationFailed(fields.into_problem()));
        };
        login_code::request_login_code(&state, &email, &locale, create_account, &requester).await?;
        Ok(CodeSentResponse::accepted(
            &state,
            &email,
            CodePurpose::Login,
        ))
    }

    /// Sign in with a code
    ///
    /// Accepts the emailed `login` code and returns a new session whose access token says
    /// `amr: ["otp"]`. The code proves the address: an unverified address becomes verified,
    /// and an address that asked for `create_account` gets its account (without a password).
    /// Every kind of failure answers the same 400 `invalid_code`.
    #[oai(
        path = "/v1/login/code/verify",
        method = "post",
        operation_id = "verify_login_code",
        transform = "equal_time"
    )]
    async fn verify_login_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<VerifyLoginCodeRequest>,
    ) -> Result<VerifyLoginCodeResponse, ApiError<CodeCheck>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        let device = fields.check(domain::parse_device_name(body.device_name.as_deref()));
        let (Some(email), Some(device), true) = (email, device, fields.passed()) else {
            return Ok(VerifyLoginCodeResponse::ValidationFailed(
                fields.into_problem(),
            ));
        };
        let code = OtpCode::parse(&body.code);
        let outcome =
            login_code::verify_login_code(&state, &email, code, device, &requester).await?;
        Ok(outcome.into())
    }
}
