//! Tag `password`: recover a forgotten password with a code, or change it.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::Error;
use crate::app::password::{self as recovery, ChangeRefused};
use crate::core::limits::Group;
use crate::domain::{EmailAddress, NewPassword, OtpCode, PasswordAttempt};
use crate::http::auth::BearerAuth;
use crate::http::middleware::equal_time;
use crate::http::problem::{JsonBodyError, Problem, ProblemCode, ProblemJson, rate_limited};
use crate::http::signup::{
    CodePurpose, CodeSentResponse, EXAMPLE_CODE, EXAMPLE_EMAIL, EXAMPLE_PASSWORD, code_sent,
    invalid_code, overloaded, validation,
};
use crate::http::types::{CodeText, EmailText, NewSecretText, SecretText};
use crate::http::{ApiTags, AppState, client};

pub struct PasswordApi;

/// Ask for a password reset code.
#[derive(Object)]
#[oai(example)]
pub struct ForgotPasswordRequest {
    /// The account's address.
    pub email: EmailText,
}

impl Example for ForgotPasswordRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
        }
    }
}

/// Check a reset code without using it up.
#[derive(Object)]
#[oai(example)]
pub struct CheckResetCodeRequest {
    /// The account's address.
    pub email: EmailText,
    /// The six-digit code from the email.
    pub code: CodeText,
}

impl Example for CheckResetCodeRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            code: CodeText(EXAMPLE_CODE.to_owned()),
        }
    }
}

/// Choose a new password with a reset code.
#[derive(Object)]
#[oai(example)]
pub struct ResetPasswordRequest {
    /// The account's address.
    pub email: EmailText,
    /// The six-digit code from the email.
    pub code: CodeText,
    /// The new password (8 to 1024 characters, not easily guessed).
    pub new_password: NewSecretText,
}

impl Example for ResetPasswordRequest {
    fn example() -> Self {
        Self {
            email: EmailText(EXAMPLE_EMAIL.to_owned()),
            code: CodeText(EXAMPLE_CODE.to_owned()),
            new_password: NewSecretText("tidal-Lantern-orchard-3904".to_owned()),
        }
    }
}

/// Change the password of the signed-in user.
#[derive(Object)]
#[oai(example)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    pub current_password: SecretText,
    /// The new password (8 to 1024 characters, not easily guessed).
    pub new_password: NewSecretText,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            current_password: SecretText(EXAMPLE_PASSWORD.to_owned()),
            new_password: NewSecretText("tidal-Lantern-orchard-3904".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum CheckResetCodeResponse {
    /// The code is right and still usable; it was not used up.
    #[oai(status = 204)]
    Usable,
    /// `invalid_code`: wrong, expired, used, locked or unknown code; one answer for all.
    /// (`invalid_request` when the body is not JSON, or a field is missing or not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// The email address is malformed; `errors` says why.
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
pub enum ResetPasswordResponse {
    /// The password is changed, every session ended and a notice emailed. No tokens: sign
    /// in with the new password.
    #[oai(status = 204)]
    Reset,
    /// `invalid_code`: wrong, expired, used, locked or unknown code; one answer for all.
    /// (`invalid_request` when the body is not JSON, or a field is missing or not a string.)
    #[oai(status = 400)]
    InvalidCode(ProblemJson),
    /// The email address or new password is not acceptable; `errors` says why. The code is
    /// not used up.
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
pub enum ChangePasswordResponse {
    /// Changed; other sessions ended, this one kept, a notice emailed.
    #[oai(status = 204)]
    Changed,
    /// `invalid_request`: the body is not JSON, or a field is missing or not a string.
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
    /// `wrong_password`: the current password is wrong.
    #[oai(status = 403)]
    WrongPassword(ProblemJson),
    /// The new password is not acceptable; `errors` says why.
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

#[OpenApi(tag = "ApiTags::Password")]
impl PasswordApi {
    /// Ask for a password reset code
    ///
    /// Emails a six-digit `reset_password` code to the account with this address (older
    /// reset codes die). The answer is the same 202 whether or not an account exists.
    #[oai(
        path = "/v1/password/forgot",
        method = "post",
        operation_id = "forgot_password",
        transform = "equal_time"
    )]
    async fn forgot_password(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: Json<ForgotPasswordRequest>,
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
        let outcome = recovery::forgot_password(&state, &email, &requester).await?;
        Ok(code_sent(
            &state,
            &email,
            CodePurpose::ResetPassword,
            outcome,
        ))
    }

    /// Check a reset code
    ///
    /// Answers 204 while the code is usable, without using it up, so an app can ask for the
    /// code on one screen and the new password on the next. A wrong code counts as an attempt.
    #[oai(
        path = "/v1/password/reset/check",
        method = "post",
        operation_id = "check_reset_code",
        transform = "equal_time"
    )]
    async fn check_reset_code(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: Json<CheckResetCodeRequest>,
    ) -> Result<CheckResetCodeResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::VerifyCode, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(CheckResetCodeResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let email = match EmailAddress::parse(&body.email) {
            Ok(email) => email,
            Err(problem) => {
                return Ok(CheckResetCodeResponse::ValidationFailed(validation(vec![
                    problem,
                ])));
            }
        };
        let code = OtpCode::parse(&body.code);
        Ok(
            if recovery::check_reset_code(&state, &email, code, &requester).await? {
                CheckResetCodeResponse::Usable
            } else {
                CheckResetCodeResponse::InvalidCode(invalid_code())
            },
        )
    }

    /// Reset the password with a code
    ///
    /// Sets a new password. The policy is checked before the code is looked at, so a refused
    /// password does not use up the code. Success ends every session of the user, kills the
    /// user's other codes, verifies an unverified address and emails a notice; it returns no
    /// tokens.
    #[oai(
        path = "/v1/password/reset",
        method = "post",
        operation_id = "reset_password",
        transform = "equal_time"
    )]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        request: &Request,
        body: Json<ResetPasswordRequest>,
    ) -> Result<ResetPasswordResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state
            .ip_limits
            .check(Group::VerifyCode, requester.ip.as_deref())
        {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(ResetPasswordResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let mut problems = Vec::new();
        let email = EmailAddress::parse(&body.email)
            .map_err(|p| problems.push(p))
            .ok();
        let password = NewPassword::parse(&body.new_password, email.as_ref(), "new_password")
            .map_err(|p| problems.push(p))
            .ok();
        let (Some(email), Some(password), true) = (email, password, problems.is_empty()) else {
            return Ok(ResetPasswordResponse::ValidationFailed(validation(
                problems,
            )));
        };
        let code = OtpCode::parse(&body.code);
        match recovery::reset_password(&state, &email, code, &password, &requester).await {
            Ok(true) => Ok(ResetPasswordResponse::Reset),
            Ok(false) => Ok(ResetPasswordResponse::InvalidCode(invalid_code())),
            Err(Error::Overloaded(_)) => {
                let (problem, retry) = overloaded();
                Ok(ResetPasswordResponse::Overloaded(problem, retry))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Change the password
    ///
    /// For a signed-in user who knows the current password. Ends the user's other sessions
    /// (this one stays), kills live codes and emails a notice.
    #[oai(
        path = "/v1/password/change",
        method = "post",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> Result<ChangePasswordResponse, JsonBodyError> {
        let requester = client::requester(request, &state.config.trusted_proxies);
        if let Err(limited) = state.ip_limits.check(Group::Login, requester.ip.as_deref()) {
            let (problem, retry, policy, remaining) = rate_limited(&limited);
            return Ok(ChangePasswordResponse::RateLimited(
                problem, retry, policy, remaining,
            ));
        }
        let current = match PasswordAttempt::parse(&body.current_password, "current_password") {
            Ok(current) => current,
            Err(problem) => {
                return Ok(ChangePasswordResponse::ValidationFailed(validation(vec![
                    problem,
                ])));
            }
        };
        match recovery::change_password(&state, &auth.0, &current, &body.new_password, &requester)
            .await
        {
            Ok(Ok(())) => Ok(ChangePasswordResponse::Changed),
            Ok(Err(ChangeRefused::Invalid(problem))) => {
                Ok(ChangePasswordResponse::ValidationFailed(validation(vec![
                    problem,
                ])))
            }
            Ok(Err(ChangeRefused::WrongPassword)) => Ok(ChangePasswordResponse::WrongPassword(
                ProblemJson(Problem::new(
                    StatusCode::FORBIDDEN,
                    ProblemCode::WrongPassword,
                    "The current password is wrong.".to_owned(),
                )),
            )),
            Ok(Err(ChangeRefused::NoUser)) => {
                let (problem, challenge) = crate::http::account::unauthorized();
                Ok(ChangePasswordResponse::Unauthorized(problem, challenge))
            }
            Err(Error::Overloaded(_)) => {
                let (problem, retry) = overloaded();
                Ok(ChangePasswordResponse::Overloaded(problem, retry))
            }
            Err(other) => Err(other.into()),
        }
    }
}
