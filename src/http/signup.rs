//! Tag `signup`: create an account and prove the address with a code.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::app::Error;
use crate::app::signup as accounts;
use crate::core::limits::Group;
use crate::domain::{self, EmailAddress, NewPassword, OtpCode, PendingPassword};
use crate::http::middleware::equal_time;
use crate::http::problem::{JsonBodyError, Problem, ProblemCode, ProblemJson, rate_limited};
use crate::http::session::SessionBody;
use crate::http::types::{CodeText, EmailText, NewSecretText, OptionalText};
use crate::http::{ApiTags, AppState, client};

pub struct SignupApi;

/// What a code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CodePurpose {
    /// Proves the address at sign-up.
    VerifyEmail,
    /// Lets the owner of the address choose a new password.
    ResetPassword,
}

/// The answer whenever a code may have been sent. It is the same whether or not an account
/// exists for the address.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CodeSent {
    /// The normalized (trimmed, lowercased) address.
    pub email: String,
    // No doc comment: a described field becomes `allOf: [$ref]`, which generators turn into
    // a copy of the type (or refuse, for enums). The schema's own description says it.
    pub purpose: CodePurpose,
    /// Digits in the code.
    pub code_length: u8,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds before another code can be requested for this address.
    pub resend_after: u64,
}

impl CodeSent {
    pub fn new(state: &AppState, email: &EmailAddress, purpose: CodePurpose) -> Self {
        Self {
            email: email.as_str().to_owned(),
            purpose,
            code_length: domain::CODE_LENGTH as u8,
            expires_in: state.config.code_ttl_secs,
            resend_after: state.config.code_resend_cooldown_secs,
        }
    }
}

impl Example for CodeSent {
    fn example() -> Self {
        Self {
            email: EXAMPLE_EMAIL.to_owned(),
            purpose: CodePurpose::VerifyEmail,
            code_length: domain::CODE_LENGTH as u8,
            expires_in: 600,
            resend_after: 60,
        }
    }
}

/// The address the examples use.
pub(crate) const EXAMPLE_EMAIL: &str = "ada@example.com";
/// A password the examples use; it passes the policy.
pub(crate) const EXAMPLE_PASSWORD: &str = "correct-Horse-battery-7781";
/// A code as the examples show it (codes may start with zeros).
pub(crate) const EXAMPLE_CODE: &str = "042917";

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
    /// characters).
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
pub enum CodeSentResponse {
    /// A code may have been sent; the answer is the same for every address.
    #[oai(status = 202)]
    Accepted(Json<CodeSent>),
    /// `invalid_request`: the body is not JSON, or a field is missing or not a string.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// The email address or password is not acceptable; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
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

pub(crate) fn invalid_code() -> ProblemJson {
    ProblemJson(Problem::new(
        poem::http::StatusCode::BAD_REQUEST,
        ProblemCode::InvalidCode,
        "The code is wrong, expired or already used. Request a new one if needed.".to_owned(),
    ))
}

/// The 202 of a code request, or its 429.
pub(crate) fn code_sent(
    state: &AppState,
    email: &EmailAddress,
    purpose: CodePurpose,
    outcome: Result<(), crate::core::limits::Limited>,
) -> CodeSentResponse {
    match outcome {
        Ok(()) => CodeSentResponse::Accepted(Json(CodeSent::new(state, email, purpose))),
        Err(limited) => {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            CodeSentResponse::RateLimited(problem, retry, policy, remaining)
        }
    }
}

/// 503 `overloaded` and its `Retry-After` seconds.
pub(crate) fn overloaded() -> (ProblemJson, u64) {
    let problem = Problem::overloaded();
    let retry = problem.retry_after.unwrap_or(1);
    (ProblemJson(problem), retry)
}

pub(crate) fn validation(problems: Vec<domain::FieldProblem>) -> ProblemJson {
    ProblemJson(Problem::validation(problems))
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
        body: Json<SignupRequest>,
    ) -> Result<CodeSentResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::SendCode, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(CodeSentResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let mut problems = Vec::new();
        let email = EmailAddress::parse(&body.email)
            .map_err(|p| problems.push(p))
            .ok();
        if let Err(problem) = NewPassword::parse(&body.password, email.as_ref(), "password") {
            problems.push(problem);
        }
        let locale = domain::parse_locale(body.locale.as_deref())
            .map_err(|p| problems.push(p))
            .ok();
        let (Some(email), Some(locale), true) = (email, locale, problems.is_empty()) else {
            return Ok(CodeSentResponse::ValidationFailed(validation(problems)));
        };
        Ok(code_sent(
            &state,
            &email,
            CodePurpose::VerifyEmail,
            accounts::signup(&state, &email, &locale, &requester).await?,
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
        body: Json<ResendRequest>,
    ) -> Result<CodeSentResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::SendCode, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(CodeSentResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let email = match EmailAddress::parse(&body.email) {
            Ok(email) => email,
            Err(problem) => {
                return Ok(CodeSentResponse::ValidationFailed(validation(vec![
                    problem,
                ])));
            }
        };
        let outcome = accounts::resend_signup_code(&state, &email, &requester).await?;
        Ok(code_sent(&state, &email, CodePurpose::VerifyEmail, outcome))
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
        body: Json<VerifySignupRequest>,
    ) -> Result<VerifySignupResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::VerifyCode, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(VerifySignupResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let mut problems = Vec::new();
        let email = EmailAddress::parse(&body.email)
            .map_err(|p| problems.push(p))
            .ok();
        // Only the length here: the strength is judged once the code proved right.
        let password = PendingPassword::parse(&body.password, "password")
            .map_err(|p| problems.push(p))
            .ok();
        let device = domain::parse_device_name(body.device_name.as_deref())
            .map_err(|p| problems.push(p))
            .ok();
        let (Some(email), Some(password), Some(device), true) =
            (email, password, device, problems.is_empty())
        else {
            return Ok(VerifySignupResponse::ValidationFailed(validation(problems)));
        };
        let code = OtpCode::parse(&body.code);
        match accounts::verify_signup(&state, &email, code, &password, device, &requester).await {
            Ok(Ok(Some(session))) => Ok(VerifySignupResponse::SignedIn(Json(session.into()))),
            Ok(Ok(None)) => Ok(VerifySignupResponse::InvalidCode(invalid_code())),
            Ok(Err(problem)) => Ok(VerifySignupResponse::ValidationFailed(validation(vec![
                problem,
            ]))),
            Err(Error::Overloaded(_)) => {
                let (problem, retry) = overloaded();
                Ok(VerifySignupResponse::Overloaded(problem, retry))
            }
            Err(other) => Err(other.into()),
        }
    }
}
