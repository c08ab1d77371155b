//! Schemas more than one tag uses: the code-sent answer, the session, the user, and the
//! values the examples show.

use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object};

use crate::app::{Account, IssuedSession};
use crate::domain::{self, EmailAddress};
use crate::http::AppState;
use crate::http::problem::ProblemJson;

/// The address the examples use.
pub const EXAMPLE_EMAIL: &str = "ada@example.com";
/// A password the examples use; it passes the policy.
pub const EXAMPLE_PASSWORD: &str = "correct-Horse-battery-7781";
/// A code as the examples show it (codes may start with zeros).
pub const EXAMPLE_CODE: &str = "042917";

/// The moment the examples happen at.
pub fn example_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

/// What a code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CodePurpose {
    /// Proves the address at sign-up.
    VerifyEmail,
    /// Lets the owner of the address choose a new password.
    ResetPassword,
    /// Signs in without a password (`request_login_code`).
    Login,
    /// Proves the new address of an email change (`request_email_change`).
    ChangeEmail,
    /// Renews the session's authentication (`request_reauth_code`).
    Reauthenticate,
}

/// The answer whenever a code may have been sent. It is the same whether or not an account
/// exists for the address.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CodeSent {
    /// The address in its normal form: trimmed and lowercased, the domain as its IDNA A-label
    /// (`bob@bücher.example` is `bob@xn--bcher-kva.example`).
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

/// A signed-in session: a short-lived access token and a refresh token that rotates on use.
#[derive(Object)]
#[oai(rename = "Session", example)]
pub struct SessionBody {
    /// Access token for `Authorization: Bearer`: a signed JWT (`typ: at+jwt`) the app's own
    /// backend can verify with `/.well-known/jwks.json`. Treat it as opaque in the app.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Opaque refresh token (`cwr_…`); `refresh_token` swaps it for a new pair, once.
    pub refresh_token: String,
    /// Seconds the refresh token stays usable if not used.
    pub refresh_expires_in: i64,
    /// This session's id, as listed by `list_sessions`.
    pub session_id: uuid::Uuid,
    // No doc comment: a described field becomes `allOf: [$ref]`, which generators turn into
    // a copy of the type. `User`'s description says it.
    pub user: User,
}

/// The shape of an access token (header, claims, signature), not one codeward signed.
const EXAMPLE_ACCESS_TOKEN: &str = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6ImV4YW1wbGUifQ.\
eyJzdWIiOiIwMTkzZjNhNi03YjFjLTc0YjYtOWQ0ZS02YWIzYzk1ZTJmMTAiLCJleHAiOjE3OTk5OTk5OTl9.\
bm90LWEtcmVhbC1zaWduYXR1cmU";

impl From<IssuedSession> for SessionBody {
    fn from(session: IssuedSession) -> Self {
        Self {
            access_token: session.access.expose().to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: session.access_expires_in,
            refresh_token: session.refresh.expose().to_owned(),
            refresh_expires_in: session.refresh_expires_in,
            session_id: session.session_id,
            user: session.user.into(),
        }
    }
}

impl Example for SessionBody {
    fn example() -> Self {
        Self {
            access_token: EXAMPLE_ACCESS_TOKEN.to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: "cwr_ExampleRefreshToken-not-a-real-one_00000000".to_owned(),
            refresh_expires_in: 2_592_000,
            session_id: uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a"),
            user: User::example(),
        }
    }
}

/// A user account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct User {
    /// Stable identifier.
    pub id: uuid::Uuid,
    /// The address in its normal form (as `CodeSent` shows it).
    pub email: String,
    /// Whether the address was proven with a code.
    pub email_verified: bool,
    /// Whether the account has a password. An account created by code sign-in has none: it
    /// signs in by code and gets one through `reset_password` or `change_password`.
    pub has_password: bool,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Language tag used for emails.
    pub locale: String,
}

impl Example for User {
    fn example() -> Self {
        Self {
            id: uuid::uuid!("0195f3a1-2b7c-7e10-8a4d-5c6b7a8f9e01"),
            email: EXAMPLE_EMAIL.to_owned(),
            email_verified: true,
            has_password: true,
            created_at: example_time(),
            locale: "en".to_owned(),
        }
    }
}

impl From<Account> for User {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            email: account.email,
            email_verified: account.email_verified,
            has_password: account.has_password,
            created_at: account.created_at,
            locale: account.locale,
        }
    }
}

/// The answer of every code request (`signup`, `resend_signup_code`, `forgot_password`).
#[derive(ApiResponse)]
pub enum CodeSentResponse {
    /// A code may have been sent; the answer is the same for every address.
    #[oai(status = 202)]
    Accepted(Json<CodeSent>),
    /// The email address or password is not acceptable; `errors` says why.
    #[oai(status = 422)]
    ValidationFailed(ProblemJson),
}

impl CodeSentResponse {
    pub fn accepted(state: &AppState, email: &EmailAddress, purpose: CodePurpose) -> Self {
        Self::Accepted(Json(CodeSent::new(state, email, purpose)))
    }
}
