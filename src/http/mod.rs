//! The HTTP API: poem-openapi operations, one module per tag, the middleware around them, and
//! the server that accepts and times connections.

pub mod account;
pub mod admin;
pub mod auth;
pub mod backend;
pub mod body;
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

use std::sync::{Arc, LazyLock};

use poem::endpoint::{BoxEndpoint, make_sync};
use poem::web::Html;
use poem::{Endpoint, IntoEndpoint, Response, Route};
use poem_openapi::{LicenseObject, OpenApiService, ServerObject, Tags};

use crate::app::Services;

/// What every handler may reach, shared through poem's `Data`.
pub type AppState = Arc<Services>;

/// The tags, in the order the document lists them and Swagger UI shows them: the order a user
/// meets them ([`ApiTags::IN_ORDER`]), not alphabetical.
#[derive(Clone, Copy, Tags)]
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

impl ApiTags {
    /// Signing up comes first, then what a signed-in user does, then the backend's and the
    /// operators' tags. poem-openapi collects tags into a set sorted by name, and Swagger UI
    /// shows them in the document's order, so the document is reordered by this list.
    pub const IN_ORDER: [ApiTags; 7] = [
        ApiTags::Signup,
        ApiTags::Session,
        ApiTags::Password,
        ApiTags::Account,
        ApiTags::Backend,
        ApiTags::Admin,
        ApiTags::Ops,
    ];
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
pub fn service() -> Service {
    Service(openapi_service())
}

fn openapi_service() -> OpenApiService<Apis, ()> {
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
    DOCUMENT.yaml.clone()
}

pub fn spec_json() -> String {
    DOCUMENT.json.clone()
}

/// The document in both forms, built once per process: building it parses and writes the
/// whole spec, and doing that for each endpoint and lookup table that needs it left megabytes
/// of freed heap behind at start-up.
static DOCUMENT: LazyLock<Document> = LazyLock::new(|| Document::of(&openapi_service()));

struct Document {
    json: String,
    yaml: String,
}

impl Document {
    fn of(api: &OpenApiService<Apis, ()>) -> Self {
        let (json, yaml) = match ordered(api) {
            Some(document) => (
                serde_json::to_string_pretty(&document).unwrap_or_else(|_| api.spec()),
                serde_yaml::to_string(&document).unwrap_or_else(|_| api.spec_yaml()),
            ),
            None => (api.spec(), api.spec_yaml()),
        };
        Self { json, yaml }
    }
}

/// poem-openapi's service with its document's tags in [`ApiTags::IN_ORDER`]: the operations
/// themselves, the spec endpoints and Swagger UI, which all serve the reordered document.
pub struct Service(OpenApiService<Apis, ()>);

impl Service {
    /// Swagger UI embeds the document in its page: poem-openapi's page, with the reordered
    /// document in place of the alphabetical one.
    pub fn swagger_ui(&self) -> impl Endpoint + 'static {
        let page = self
            .0
            .swagger_ui_html()
            .replace(&self.0.spec(), &DOCUMENT.json);
        Route::new()
            .at("/", make_sync(move |_| Html(page.clone())))
            // The rest of poem-openapi's Swagger UI (its OAuth receiver page) as it is.
            .nest_no_strip("/oauth-receiver.html", self.0.swagger_ui())
    }

    pub fn spec_endpoint(&self) -> impl Endpoint + 'static {
        let spec = spec_json();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(spec.clone())
        })
    }

    pub fn spec_endpoint_yaml(&self) -> impl Endpoint + 'static {
        let spec = spec_yaml();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/x-yaml")
                .header("Content-Disposition", "inline; filename=\"spec.yaml\"")
                .body(spec.clone())
        })
    }
}

/// The document as a value whose mappings keep their order (serde_yaml's, unlike serde_json's
/// without `preserve_order`), with the tags reordered. `None` only if poem-openapi's own YAML
/// did not parse, and then the tags stay alphabetical (a test fails on that).
fn ordered(api: &OpenApiService<Apis, ()>) -> Option<serde_yaml::Value> {
    let mut document: serde_yaml::Value = serde_yaml::from_str(&api.spec_yaml()).ok()?;
    if let Some(tags) = document
        .get_mut("tags")
        .and_then(serde_yaml::Value::as_sequence_mut)
    {
        let rank = |tag: &serde_yaml::Value| {
            let name = tag.get("name").and_then(serde_yaml::Value::as_str);
            ApiTags::IN_ORDER
                .iter()
                .position(|known| Some(known.name()) == name)
                .unwrap_or(ApiTags::IN_ORDER.len())
        };
        tags.sort_by_key(rank);
    }
    Some(document)
}

impl IntoEndpoint for Service {
    type Endpoint = BoxEndpoint<'static>;

    fn into_endpoint(self) -> Self::Endpoint {
        self.0.into_endpoint()
    }
}
