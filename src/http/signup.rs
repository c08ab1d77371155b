//! Tag `signup`: create an account and prove the address with a code.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::signup::{self, VerifySignup};
use crate::core::limits::Group;
use crate::domain::{self, EmailAddress, OtpCode, PendingPassword};
use crate::http::body::JsonBody;
use crate::http::middleware::equal_time;
use crate::http::problem::{ApiError, CodeCheckHashing, FieldCheck, ProblemJson, Public};
use crate::http::schemas::{
    CodePurpose, CodeSentResponse, EXAMPLE_CODE, EXAMPLE_EMAIL, EXAMPLE_PASSWORD, SessionBody,
};
use crate::http::types::{CodeText, EmailText, NewSecretText, OptionalText};
use crate::http::{ApiTags, AppState, guard};

pub struct SignupApi;

/// Start a sign-up.
#[derive(Object)]
#[oai(example)]
pub struct SignupRequest {
    /// The address to create the account for (at most 254 characters).
    pub email: EmailText,
    /// The password the user intends to use (8 to 1024 characters, not easily guessed):
    /// checked against the policy here, bound only when the code is verified.
    pub password: NewSecretText,
    /// BCP 47 language tag for emails, e.g. `es-MX`; defaults to `en`.
    pub locale: Option<OptionalText>,
}

impl Example for SignupRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            password: NewSecretText(EXAMPLE_PASSWORD.to_owned()),
            locale: Some(OptionalText("en".to_owned())),
        }
    }
}

/// Ask for a new sign-up code.
#[derive(Object)]
#[oai(example)]
pub struct ResendRequest {
    /// The address the sign-up was started with.
    pub email: EmailText,
}

impl Example for ResendRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
        }
    }
}

/// Finish a sign-up with the emailed code.
#[derive(Object)]
#[oai(example)]
pub struct VerifySignupRequest {
    /// The address the sign-up was started with.
    pub email: EmailText,
    /// The six-digit code from the email.
    pub code: CodeText,
    /// The account's password (checked against the policy again, then bound).
    pub password: NewSecretText,
    /// A name for this device in the session list, e.g. `Ada's iPhone` (at most 128
    /// characters, no control or bidirectional-text characters).
    pub device_name: Option<OptionalText>,
}

impl Example for VerifySignupRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            code: CodeText(EXAMPLE_CODE.to_owned()),
            password: NewSecretText(EXAMPLE_PASSWORD.to_owned()),
            device_name: Some(OptionalText("Ada's iPhone".to_owned())),
        }
    }
}

#[derive(ApiResponse)]
pub enum VerifySignupResponse {
    /// The address is verified, the password set and the user signed in.
    #[oai(status = 200)]
    SignedIn(Json<SessionBody>),
    /// `invalid_code`: wrong, expired, used, locked or unknown code, or no sign-up pending
    /// for this address; one answer for all. (`invalid_request` when the body is not JSON, or
    /// a field is missing or not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// The email address or password is not acceptable; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl From<VerifySignup> for VerifySignupResponse {
    fn from(outcome: VerifySignup) -> Self {
        match outcome {
            VerifySignup::SignedIn(session) => Self::SignedIn(Json(session.into())),
            VerifySignup::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
            VerifySignup::PasswordRefused(problem) => {
                Self::ValidationFailed(ProblemJson::validation(vec![problem]))
            }
        }
    }
}

#[OpenApi(tag = "ApiTags::Signup")]
impl SignupApi {
    /// Start a sign-up
    ///
    /// Checks the email address and the password policy, then emails a six-digit
    /// `verify_email` code. The password is not stored yet: it is bound by `verify_signup`,
    /// so whoever proves the mailbox chooses the password. The answer is the same 202 for a
    /// new address, an unverified one (a new code; older ones die) and a verified one (that
    /// address gets an "account exists" email instead of a code).
    #[oai(
        path = "/v1/signup",
        method = "post",
        operation_id = "signup",
        transform = "equal_time"
    )]
    async fn signup(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<SignupRequest>,
    ) -> Result<CodeSentResponse, ApiError<Public>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        let password = fields.check(PendingPassword::parse(&body.password, "password"));
        if let Some(password) = password {
            // The strength estimate (zxcvbn) is CPU work: off the async workers.
            let passwords = &state.passwords;
            let judged = passwords.judge(&password, email.as_ref(), "password").await;
            fields.check(judged.map_err(crate::core::Error::from)?);
        }
        let locale = fields.check(domain::parse_locale(body.locale.as_deref()));
        let (Some(email), Some(locale), true) = (email, locale, fields.passed()) else {
            return Ok(CodeSentResponse::ValidationFailed(fields.into_problem()));
        };
        signup::signup(&state, &email, &locale, &requester).await?;
        Ok(CodeSentResponse::accepted(
            &state,
            &email,
            CodePurpose::VerifyEmail,
        ))
    }

    /// Send a new sign-up code
    ///
    /// Emails a new code to an address whose sign-up is not verified yet (older codes die).
    /// The answer is the same 202 for any address.
    #[oai(
        path = "/v1/signup/resend",
        method = "post",
        operation_id = "resend_signup_code",
        transform = "equal_time"
    )]
    async fn resend_signup_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<ResendRequest>,
    ) -> Result<CodeSentResponse, ApiError<Public>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        let email = match FieldCheck::one(EmailAddress::parse(&body.email)) {
            Ok(email) => email,
            Err(refused) => return Ok(CodeSentResponse::ValidationFailed(refused)),
        };
        signup::resend_signup_code(&state, &email, &requester).await?;
        Ok(CodeSentResponse::accepted(
            &state,
            &email,
            CodePurpose::VerifyEmail,
        ))
    }

    /// Verify the sign-up code and sign in
    ///
    /// Accepts the emailed code, sets the password (checked against the policy; a refused
    /// password does not use up the code) and returns a new session. Every kind of failure
    /// answers the same 400 `invalid_code`.
    #[oai(
        path = "/v1/signup/verify",
        method = "post",
        operation_id = "verify_signup",
        transform = "equal_time"
    )]
    async fn verify_signup(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: JsonBody<VerifySignupRequest>,
    ) -> Result<VerifySignupResponse, ApiError<CodeCheckHashing>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        // Only the length here: the strength is judged once the code proved right.
        let password = fields.check(PendingPassword::parse(&body.password, "password"));
        let device = fields.check(domain::parse_device_name(body.device_name.as_deref()));
        let (Some(email), Some(password), Some(device), true) =
            (email, password, device, fields.passed())
        else {
            return Ok(VerifySignupResponse::ValidationFailed(
                fields.into_problem(),
            ));
        };
        let code = OtpCode::parse(&body.code);
        let outcome =
            signup::verify_signup(&state, &email, code, &password, device, &requester).await?;
        Ok(outcome.into())
    }
}
