//! Tag `password`: recover a forgotten password with a code, or change it.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;

use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::password::{self, ChangePassword, CheckResetCode, ResetPassword};
use crate::core::limits::Group;
use crate::domain::{EmailAddress, FieldProblem, OtpCode, PasswordAttempt, PendingPassword};
use crate::http::auth::BearerAuth;
use crate::http::body::JsonBody;
use crate::http::middleware::{equal_time, wake_outbox};
use crate::http::problem::{
    ApiError, CodeCheck, CodeCheckHashing, FieldCheck, Problem, ProblemCode, ProblemJson, Public,
    SignedInHashingRecent,
};
use crate::http::schemas::{
    CodePurpose, CodeSentResponse, EXAMPLE_CODE, EXAMPLE_EMAIL, EXAMPLE_PASSWORD,
};
use crate::http::types::{CodeText, EmailText, NewSecretText, SecretText};
use crate::http::{ApiTags, AppState, guard};

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
    /// The password in use now. Required when the account has a password; an account without
    /// one (made by sign-in by code) leaves it out and needs a recent authentication instead
    /// (403 `reauthentication_required`: `reauthenticate`, then retry).
    pub current_password: Option<SecretText>,
    /// The new password (8 to 1024 characters, not easily guessed).
    pub new_password: NewSecretText,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            current_password: Some(SecretText(EXAMPLE_PASSWORD.to_owned())),
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
}

impl From<CheckResetCode> for CheckResetCodeResponse {
    fn from(outcome: CheckResetCode) -> Self {
        match outcome {
            CheckResetCode::Usable => Self::Usable,
            CheckResetCode::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
        }
    }
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
    /// The email address or new password is not acceptable; `errors` says why. The length
    /// is checked before the code, the strength once the code is right; either way the code
    /// is not used up.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl From<ResetPassword> for ResetPasswordResponse {
    fn from(outcome: ResetPassword) -> Self {
        match outcome {
            ResetPassword::Reset => Self::Reset,
            ResetPassword::InvalidCode => Self::InvalidCode(ProblemJson::invalid_code()),
            ResetPassword::PasswordRefused(problem) => {
                Self::ValidationFailed(ProblemJson::validation(vec![problem]))
            }
        }
    }
}

#[derive(ApiResponse)]
pub enum ChangePasswordResponse {
    /// Changed; other sessions ended, this one kept, a notice emailed.
    #[oai(status = 204)]
    Changed,
    /// `wrong_password`: the current password is wrong; or `reauthentication_required`: no
    /// `current_password` was given (an account without a password) and the session's latest
    /// sign-in or re-authentication is older than `CODEWARD_REAUTH_MAX_AGE_SECS` (600 s by
    /// default) — `reauthenticate`, then retry.
    #[oai(status = 403)]
    WrongPassword(ProblemJson),
    /// The new password is not acceptable, or `current_password` is missing while the account
    /// has a password; `errors` says which.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl TryFrom<ChangePassword> for ChangePasswordResponse {
    type Error = ApiError<SignedInHashingRecent>;

    fn try_from(outcome: ChangePassword) -> Result<Self, Self::Error> {
        Ok(match outcome {
            ChangePassword::Changed => Self::Changed,
            ChangePassword::WrongPassword => Self::WrongPassword(ProblemJson(Problem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::WrongPassword,
                "The current password is wrong.".to_owned(),
            ))),
            ChangePassword::PasswordRefused(problem) => {
                Self::ValidationFailed(ProblemJson::validation(vec![problem]))
            }
            ChangePassword::CurrentPasswordRequired => {
                Self::ValidationFailed(ProblemJson::validation(vec![FieldProblem {
                    field: "current_password",
                    code: "required",
                    message: "The account has a password: give the current one.".to_owned(),
                }]))
            }
            ChangePassword::SignedOut => return Err(ApiError::unauthorized()),
        })
    }
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
        body: JsonBody<ForgotPasswordRequest>,
    ) -> Result<CodeSentResponse, ApiError<Public>> {
        let requester = guard::limited(&state, request, Group::SendCode)?;
        let email = match FieldCheck::one(EmailAddress::parse(&body.email)) {
            Ok(email) => email,
            Err(refused) => return Ok(CodeSentResponse::ValidationFailed(refused)),
        };
        password::forgot_password(&state, &email, &requester).await?;
        Ok(CodeSentResponse::accepted(
            &state,
            &email,
            CodePurpose::ResetPassword,
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
        body: JsonBody<CheckResetCodeRequest>,
    ) -> Result<CheckResetCodeResponse, ApiError<CodeCheck>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let email = match FieldCheck::one(EmailAddress::parse(&body.email)) {
            Ok(email) => email,
            Err(refused) => return Ok(CheckResetCodeResponse::ValidationFailed(refused)),
        };
        let code = OtpCode::parse(&body.code);
        let outcome = password::check_reset_code(&state, &email, code, &requester).await?;
        Ok(outcome.into())
    }

    /// Reset the password with a code
    ///
    /// Sets a new password. Its length is checked at once, its strength once the code is
    /// right; a refused password does not use up the code. Success ends every session of the
    /// user, kills the user's other codes, verifies an unverified address and emails a notice;
    /// it returns no tokens.
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
        body: JsonBody<ResetPasswordRequest>,
    ) -> Result<ResetPasswordResponse, ApiError<CodeCheckHashing>> {
        let requester = guard::limited(&state, request, Group::VerifyCode)?;
        let mut fields = FieldCheck::default();
        let email = fields.check(EmailAddress::parse(&body.email));
        // Only the length here: the strength is judged once the code proved right.
        let new_password = fields.check(PendingPassword::parse(&body.new_password, "new_password"));
        let (Some(email), Some(new_password), true) = (email, new_password, fields.passed()) else {
            return Ok(ResetPasswordResponse::ValidationFailed(
                fields.into_problem(),
            ));
        };
        let code = OtpCode::parse(&body.code);
        let outcome =
            password::reset_password(&state, &email, code, &new_password, &requester).await?;
        Ok(outcome.into())
    }

    /// Change the password
    ///
    /// For a signed-in user who knows the current password. Ends the user's other sessions
    /// (this one stays), kills live codes and emails a notice. Wrong current passwords are
    /// counted per account like failed sign-ins: past the free ones, each further attempt
    /// waits (429 `rate_limited`). An account without a password (made by sign-in by code)
    /// sets its first one without `current_password`, within `CODEWARD_REAUTH_MAX_AGE_SECS`
    /// of its latest sign-in or re-authentication (else 403 `reauthentication_required`); an
    /// account with a password that leaves `current_password` out gets 422 naming it.
    #[oai(
        path = "/v1/password/change",
        method = "post",
        operation_id = "change_password",
        transform = "wake_outbox"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: BearerAuth,
        body: JsonBody<ChangePasswordRequest>,
    ) -> Result<ChangePasswordResponse, ApiError<SignedInHashingRecent>> {
        let requester = guard::limited(&state, request, Group::Login)?;
        let current = match body.current_password.as_deref() {
            Some(current) => {
                match FieldCheck::one(PasswordAttempt::parse(current, "current_password")) {
                    Ok(current) => Some(current),
                    Err(refused) => return Ok(ChangePasswordResponse::ValidationFailed(refused)),
                }
            }
            None => None,
        };
        let new_password = &body.new_password;
        let outcome =
            password::change_password(&state, &auth.0, current.as_ref(), new_password, &requester)
                .await?;
        outcome.try_into()
    }
}
