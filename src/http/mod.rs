//! The HTTP API: poem-openapi operations, one module per tag, the middleware around them, and
//! the server that accepts and times connections.

pub mod account;
pub mod admin;
pub mod auth;
pub mod backend;
pub mod client;
pub mod email_change;
pub mod guard;
pub mod keyset;
pub mod login_code;
pub mod middleware;
pub mod ops;
pub mod password;
pub mod problem;
pub mod reauth;
pub mod schemas;
pub mod server;
pub mod session;
pub mod signup;
pub mod types;

use std::sync::Arc;

use poem_openapi::{LicenseObject, OpenApiService, ServerObject, Tags};

use crate::app::Services;

/// What every handler may reach, shared through poem's `Data`.
pub type AppState = Arc<Services>;

#[derive(Tags)]
pub enum ApiTags {
    /// Create an account and prove the email address with a code.
    Signup,
    /// Sign in, rotate tokens, list and revoke sessions.
    Session,
    /// Recover a forgotten password with a code, or change it.
    Password,
    /// The signed-in user's own account.
    Account,
    /// For the app's own backend: verify codeward's access tokens.
    Backend,
    /// For operators' tools: read, disable, enable and delete accounts, end their sessions.
    Admin,
    /// Health, readiness and documentation, for operators.
    Ops,
}

/// Every API of codeward, one per tag.
pub type Apis = (
    signup::SignupApi,
    session::SessionApi,
    login_code::LoginCodeApi,
    reauth::ReauthApi,
    password::PasswordApi,
    account::AccountApi,
    email_change::EmailChangeApi,
    keyset::KeySetApi,
    backend::BackendApi,
    admin::AdminApi,
    ops::OpsApi,
);

const DESCRIPTION: &str = "An OTP-centric authentication server: sign up with email and \
password, verify the address with a six-digit emailed code, sign in to rotating per-device \
sessions, and recover a password with another emailed code.\n\nEvery error is an RFC 9457 \
`application/problem+json` body whose `code` field is one of the `ProblemCode` values.";

/// The OpenAPI service; building it needs no database, so `codeward openapi` works offline.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            signup::SignupApi,
            session::SessionApi,
            login_code::LoginCodeApi,
            reauth::ReauthApi,
            password::PasswordApi,
            account::AccountApi,
            email_change::EmailChangeApi,
            keyset::KeySetApi,
            backend::BackendApi,
            admin::AdminApi,
            ops::OpsApi,
        ),
        "codeward",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(LicenseObject::new("Apache-2.0").url("https://www.apache.org/licenses/LICENSE-2.0"))
    // Relative: clients and Swagger UI call the server that served them the document.
    .server(ServerObject::new("/").description("The server this document was served from"))
}

/// The spec exactly as committed in `openapi.yaml`.
pub fn spec_yaml() -> String {
    service().spec_yaml()
}

pub fn spec_json() -> String {
    service().spec()
}
