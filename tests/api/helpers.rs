//! `spawn_app()`: the real server on port 0 against a fresh database of its own; `Api`: one
//! typed request per operation; the `codeward` binary run as an operator runs it; the values
//! every file shares.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::process::{Command, Output};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use clap::Parser;
use codeward::cli::Cli;
use codeward::config::Config;
use codeward::core::mail::OutboxSignal;
use codeward::infra::clock::Clock;
use codeward::startup::Application;
use entity::email_outbox;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::smtp::SmtpSink;

/// The password the test accounts sign up with: strong enough for the strength check.
pub const PASSWORD: &str = "correct horse battery staple";
/// The password a test changes or resets to.
pub const NEW_PASSWORD: &str = "a brand new lantern orbit";
/// The pepper of every test server: they all send email over SMTP, which the development
/// pepper may not do.
pub const TEST_PEPPER: &str = "test:9o3ZcTXcYWm0fB2mFq8rQ3vKx1LhJd5uN7aP4eSgW0c=";

/// A six-digit code that is not `code` (the next one, wrapping at 999999).
pub fn other_code(code: &str) -> String {
    let n: u32 = code.parse().expect("six digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// A database created for one test; SQLite files live in `_dir`, removed on drop.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<TempDir>,
}

/// Which database server the suite runs against, from the environment.
pub enum Backend {
    Sqlite,
    Postgres(String),
    MySql(String),
}

pub fn backend() -> Backend {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = var("CODEWARD_TEST_POSTGRES_URL") {
        Backend::Postgres(url)
    } else if let Some(url) = var("CODEWARD_TEST_MYSQL_URL") {
        Backend::MySql(url)
    } else {
        Backend::Sqlite
    }
}

/// Creates an empty database no other test uses. On a server this is a new database named
/// `cw_test_<uuid>`; `.ci/run` drops leftovers from earlier runs.
pub async fn fresh_database() -> TestDatabase {
    let name = format!("cw_test_{}", uuid::Uuid::new_v4().simple());
    match backend() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("codeward.db").display()
            );
            TestDatabase {
                url,
                _dir: Some(dir),
            }
        }
        Backend::Postgres(server) => {
            create_on_server(&server, &format!("CREATE DATABASE \"{name}\""), &name).await
        }
        Backend::MySql(server) => {
            create_on_server(&server, &format!("CREATE DATABASE `{name}`"), &name).await
        }
    }
}

async fn create_on_server(server_url: &str, create: &str, name: &str) -> TestDatabase {
    let admin = Database::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("test database server {server_url} unreachable: {e}"));
    admin
        .execute_unprepared(create)
        .await
        .expect("create test database");
    admin.close().await.expect("close admin connection");
    let mut url = url::Url::parse(server_url).expect("server URL");
    url.set_path(&format!("/{name}"));
    TestDatabase {
        url: url.to_string(),
        _dir: None,
    }
}

/// Configuration for a test app: the given flags on top of port 0, the test database, the test
/// pepper and a private mailbox folder.
pub fn test_config(database_url: &str, mailbox: &TempDir, extra: &[&str]) -> Config {
    let mut args = vec![
        "codeward".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--database-url={database_url}"),
        format!("--pepper={TEST_PEPPER}"),
        format!("--mailbox-dir={}", mailbox.path().display()),
        "--database-max-connections=5".to_owned(),
        // A sender production accepts: it refuses the default, at localhost.
        "--mail-from=codeward <no-reply@codeward.example>".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut config = Cli::try_parse_from(last_of_each_flag(&args))
        .expect("test flags")
        .config;
    config.validate().expect("valid test config");
    config
}

/// `args` with only the last `--flag=value` of each flag: a test's own flag replaces a
/// default given before it (clap refuses a repeated flag).
pub fn last_of_each_flag(args: &[String]) -> Vec<String> {
    let flag = |arg: &String| arg.split('=').next().unwrap_or_default().to_owned();
    args.iter()
        .enumerate()
        .filter(|(i, arg)| !args[i + 1..].iter().any(|later| flag(later) == flag(arg)))
        .map(|(_, arg)| arg.clone())
        .collect()
}

/// One running codeward server (a test may run several on one database).
pub struct Instance {
    pub address: String,
    pub outbox: OutboxSignal,
    /// Wakes the instance's webhook worker.
    pub webhooks: codeward::core::queue::Signal,
    /// The instance's clock; `advance` it to expire codes and tokens without sleeping.
    pub clock: Clock,
    /// Where `/metrics` is served when `--metrics-listen` was given.
    pub metrics_port: Option<u16>,
    /// The instance's signing keys (rotate them on `clock`).
    pub keys: std::sync::Arc<codeward::core::keys::Keys>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _mailbox: TempDir,
}

impl Instance {
    /// Stops the server the way SIGTERM does and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }
}

/// Settings that keep tests fast and focused: quick email polls and retries, cheap argon2, a
/// queue no test fills by accident, and abuse limits out of the way. Tests of those settings
/// pass the real values back in (a later flag wins).
pub const FAST: [&str; 13] = [
    "--email-poll-ms=50",
    "--email-retry-base-ms=50",
    "--email-retry-max-secs=1",
    "--argon2-memory-kib=1024",
    "--argon2-iterations=1",
    "--password-hash-queue=10000",
    "--code-resend-cooldown-secs=0",
    "--codes-per-address-per-hour=1000",
    "--login-failures-before-delay=1000",
    "--ip-rate-send-code=100000/s",
    "--ip-rate-verify-code=100000/s",
    "--ip-rate-login=100000/s",
    "--ip-rate-refresh=100000/s",
];

/// Starts a server on `database_url`, sending email to `smtp_url`, with extra flags.
pub async fn start_instance(database_url: &str, smtp_url: &str, extra: &[&str]) -> Instance {
    if std::env::var_os("TEST_LOG").is_some() {
        codeward::infra::telemetry::init("info", codeward::config::LogFormat::Text);
    }
    let mailbox = tempfile::tempdir().expect("mailbox dir");
    let smtp = format!("--smtp-url={smtp_url}");
    let mut flags: Vec<&str> = FAST.to_vec();
    flags.push(&smtp);
    flags.extend_from_slice(extra);
    let config = test_config(database_url, &mailbox, &flags);
    let clock = Clock::default();
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("application builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let outbox = app.outbox_signal();
    let webhooks = app.webhook_signal();
    let keys = app.keys();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Instance {
        address: format!("http://127.0.0.1:{port}"),
        outbox,
        webhooks,
        clock,
        metrics_port,
        keys,
        shutdown: Some(shutdown),
        server: Some(server),
        _mailbox: mailbox,
    }
}

/// A server, its own fresh database and its own SMTP sink. Derefs to its [`Api`], so
/// `app.login(…)`, `app.client` and `app.address` work on it directly.
pub struct TestApp {
    pub api: Api,
    pub database: TestDatabase,
    pub smtp: SmtpSink,
    pub instance: Instance,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the real server (all middleware, real listener, real SMTP sink) with extra flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let database = fresh_database().await;
    let smtp = SmtpSink::start();
    let instance = start_instance(&database.url, &smtp.url(), extra).await;
    TestApp {
        api: instance.api(),
        database,
        smtp,
        instance,
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

impl Instance {
    /// A client of this instance.
    pub fn api(&self) -> Api {
        Api::new(&self.address)
    }
}

/// A response on its way. Each request is built before the future is returned, so many can be
/// built from temporaries and awaited together (`join_all`).
pub trait Pending: Future<Output = reqwest::Response> + Send + 'static {}
impl<T: Future<Output = reqwest::Response> + Send + 'static> Pending for T {}

fn send(request: reqwest::RequestBuilder) -> impl Pending + use<> {
    async move { request.send().await.expect("request sent") }
}

/// A client of one codeward server (an in-process instance or a `codeward serve` process):
/// the raw verbs, and one typed request per operation of `openapi.yaml`.
#[derive(Clone)]
pub struct Api {
    pub address: String,
    pub client: reqwest::Client,
    /// Sent as `X-Forwarded-For` lines, in order, on every request (see
    /// [`Api::forwarded_for`]).
    forwarded: Vec<String>,
}

impl Api {
    /// A client of the server at `address` (`http://host:port`).
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            client: http_client(),
            forwarded: Vec::new(),
        }
    }

    /// The same client, speaking as the client `ip` behind a proxy (`X-Forwarded-For`).
    pub fn forwarded_for(&self, ip: &str) -> Self {
        self.forwarded_for_lines(&[ip])
    }

    /// The same client, sending one `X-Forwarded-For` field line per entry of `lines`, in
    /// order (as a chain of proxies may).
    pub fn forwarded_for_lines(&self, lines: &[&str]) -> Self {
        Self {
            forwarded: lines.iter().map(|line| (*line).to_owned()).collect(),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        // `header` appends: each entry goes out as a field line of its own.
        self.forwarded.iter().fold(
            self.client.request(method, self.url(path)),
            |request, line| request.header("x-forwarded-for", line),
        )
    }

    pub fn get(&self, path: &str) -> impl Pending + use<> {
        send(self.request(reqwest::Method::GET, path))
    }

    /// Posts JSON, whatever its shape: for the tests of odd and malformed bodies. A normal
    /// request goes through its typed method below.
    pub fn post(&self, path: &str, body: &Value) -> impl Pending + use<> {
        send(self.request(reqwest::Method::POST, path).json(body))
    }

    pub fn get_authed(&self, path: &str, access_token: &str) -> impl Pending + use<> {
        send(self.authed(reqwest::Method::GET, path, access_token))
    }

    fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, path).bearer_auth(access_token)
    }

    /// `POST /v1/signup`.
    pub fn signup(&self, email: &str, password: &str) -> impl Pending + use<> {
        self.post("/v1/signup", &json!({"email": email, "password": password}))
    }

    /// `POST /v1/signup` with a `locale` for the emails.
    pub fn signup_in_locale(
        &self,
        email: &str,
        password: &str,
        locale: &str,
    ) -> impl Pending + use<> {
        self.post(
            "/v1/signup",
            &json!({"email": email, "password": password, "locale": locale}),
        )
    }

    /// `POST /v1/signup/resend`.
    pub fn resend_signup_code(&self, email: &str) -> impl Pending + use<> {
        self.post("/v1/signup/resend", &json!({"email": email}))
    }

    /// `POST /v1/signup/verify`.
    pub fn verify_signup(&self, email: &str, code: &str, password: &str) -> impl Pending + use<> {
        self.post(
            "/v1/signup/verify",
            &json!({"email": email, "code": code, "password": password}),
        )
    }

    /// `POST /v1/signup/verify` naming the device the session is for.
    pub fn verify_signup_on_device(
        &self,
        email: &str,
        code: &str,
        password: &str,
        device_name: &str,
    ) -> impl Pending + use<> {
        self.post(
            "/v1/signup/verify",
            &json!({"email": email, "code": code, "password": password, "device_name": device_name}),
        )
    }

    /// `POST /v1/login`.
    pub fn login(&self, email: &str, password: &str) -> impl Pending + use<> {
        self.post("/v1/login", &json!({"email": email, "password": password}))
    }

    /// `POST /v1/login` naming the device the session is for.
    pub fn login_on_device(
        &self,
        email: &str,
        password: &str,
        device_name: &str,
    ) -> impl Pending + use<> {
        self.post(
            "/v1/login",
            &json!({"email": email, "password": password, "device_name": device_name}),
        )
    }

    /// `POST /v1/login/code`; `create_account` is left out when `None`.
    pub fn request_login_code(
        &self,
        email: &str,
        create_account: Option<bool>,
    ) -> impl Pending + use<> {
        let mut body = json!({"email": email});
        if let Some(create) = create_account {
            body["create_account"] = json!(create);
        }
        self.post("/v1/login/code", &body)
    }

    /// `POST /v1/login/code/verify`.
    pub fn verify_login_code(&self, email: &str, code: &str) -> impl Pending + use<> {
        self.post(
            "/v1/login/code/verify",
            &json!({"email": email, "code": code}),
        )
    }

    /// `POST /v1/token/refresh`.
    pub fn refresh(&self, refresh_token: &str) -> impl Pending + use<> {
        self.post(
            "/v1/token/refresh",
            &json!({"refresh_token": refresh_token}),
        )
    }

    /// `POST /v1/logout`.
    pub fn logout(&self, access_token: &str) -> impl Pending + use<> {
        send(self.authed(reqwest::Method::POST, "/v1/logout", access_token))
    }

    /// `GET /v1/sessions`.
    pub fn list_sessions(&self, access_token: &str) -> impl Pending + use<> {
        self.get_authed("/v1/sessions", access_token)
    }

    /// `DELETE /v1/sessions/{id}`.
    pub fn revoke_session(&self, access_token: &str, id: &str) -> impl Pending + use<> {
        let path = format!("/v1/sessions/{id}");
        send(self.authed(reqwest::Method::DELETE, &path, access_token))
    }

    /// `DELETE /v1/sessions`: every session but this one.
    pub fn revoke_other_sessions(&self, access_token: &str) -> impl Pending + use<> {
        send(self.authed(reqwest::Method::DELETE, "/v1/sessions", access_token))
    }

    /// `POST /v1/password/forgot`.
    pub fn forgot_password(&self, email: &str) -> impl Pending + use<> {
        self.post("/v1/password/forgot", &json!({"email": email}))
    }

    /// `POST /v1/password/reset/check`.
    pub fn check_reset_code(&self, email: &str, code: &str) -> impl Pending + use<> {
        self.post(
            "/v1/password/reset/check",
            &json!({"email": email, "code": code}),
        )
    }

    /// `POST /v1/password/reset`.
    pub fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> impl Pending + use<> {
        self.post(
            "/v1/password/reset",
            &json!({"email": email, "code": code, "new_password": new_password}),
        )
    }

    /// `POST /v1/password/change`.
    pub fn change_password(
        &self,
        access_token: &str,
        current_password: &str,
        new_password: &str,
    ) -> impl Pending + use<> {
        let body = json!({"current_password": current_password, "new_password": new_password});
        send(
            self.authed(reqwest::Method::POST, "/v1/password/change", access_token)
                .json(&body),
        )
    }

    /// `POST /v1/password/change` without `current_password` (an account without a password).
    pub fn change_password_without_current(
        &self,
        access_token: &str,
        new_password: &str,
    ) -> impl Pending + use<> {
        let body = json!({"new_password": new_password});
        send(
            self.authed(reqwest::Method::POST, "/v1/password/change", access_token)
                .json(&body),
        )
    }

    /// `POST /v1/reauth/code`.
    pub fn request_reauth_code(&self, access_token: &str) -> impl Pending + use<> {
        send(self.authed(reqwest::Method::POST, "/v1/reauth/code", access_token))
    }

    /// `POST /v1/reauth` with any body (`{password}`, `{code}`, or an odd one).
    pub fn reauthenticate(&self, access_token: &str, body: &Value) -> impl Pending + use<> {
        send(
            self.authed(reqwest::Method::POST, "/v1/reauth", access_token)
                .json(body),
        )
    }

    /// `GET /v1/me`.
    pub fn me(&self, access_token: &str) -> impl Pending + use<> {
        self.get_authed("/v1/me", access_token)
    }

    /// `POST /v1/me/email`.
    pub fn request_email_change(
        &self,
        access_token: &str,
        new_email: &str,
    ) -> impl Pending + use<> {
        let body = json!({"new_email": new_email});
        send(
            self.authed(reqwest::Method::POST, "/v1/me/email", access_token)
                .json(&body),
        )
    }

    /// `POST /v1/me/email/verify`.
    pub fn verify_email_change(&self, access_token: &str, code: &str) -> impl Pending + use<> {
        let body = json!({"code": code});
        send(
            self.authed(reqwest::Method::POST, "/v1/me/email/verify", access_token)
                .json(&body),
        )
    }

    /// `DELETE /v1/me`.
    pub fn delete_account(&self, access_token: &str) -> impl Pending + use<> {
        send(self.authed(reqwest::Method::DELETE, "/v1/me", access_token))
    }

    /// `POST /v1/token/introspect` with the form `token=…`, authenticated by `api_key`.
    pub fn introspect(&self, api_key: &str, token: &str) -> impl Pending + use<> {
        send(
            self.authed(reqwest::Method::POST, "/v1/token/introspect", api_key)
                .form(&[("token", token)]),
        )
    }

    /// `POST /v1/token/introspect` with any body of any media type: for the tests of odd
    /// bodies.
    pub fn introspect_raw(
        &self,
        api_key: &str,
        content_type: &str,
        body: &str,
    ) -> impl Pending + use<> {
        send(
            self.authed(reqwest::Method::POST, "/v1/token/introspect", api_key)
                .header("content-type", content_type)
                .body(body.to_owned()),
        )
    }

    /// `GET /v1/admin/users?{query}` with `api_key`; `query` goes into the URL as it is.
    pub fn list_users(&self, api_key: &str, query: &str) -> impl Pending + use<> {
        self.get_authed(&format!("/v1/admin/users?{query}"), api_key)
    }

    /// `GET /v1/admin/users/{id}`.
    pub fn get_user(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        self.get_authed(&format!("/v1/admin/users/{id}"), api_key)
    }

    /// `POST /v1/admin/users/{id}/disable`.
    pub fn disable_user(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        let path = format!("/v1/admin/users/{id}/disable");
        send(self.authed(reqwest::Method::POST, &path, api_key))
    }

    /// `POST /v1/admin/users/{id}/enable`.
    pub fn enable_user(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        let path = format!("/v1/admin/users/{id}/enable");
        send(self.authed(reqwest::Method::POST, &path, api_key))
    }

    /// `DELETE /v1/admin/users/{id}`.
    pub fn delete_user(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        let path = format!("/v1/admin/users/{id}");
        send(self.authed(reqwest::Method::DELETE, &path, api_key))
    }

    /// `GET /v1/admin/users/{id}/sessions`.
    pub fn list_user_sessions(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        self.get_authed(&format!("/v1/admin/users/{id}/sessions"), api_key)
    }

    /// `DELETE /v1/admin/users/{id}/sessions`.
    pub fn revoke_user_sessions(&self, api_key: &str, id: &str) -> impl Pending + use<> {
        let path = format!("/v1/admin/users/{id}/sessions");
        send(self.authed(reqwest::Method::DELETE, &path, api_key))
    }

    /// `GET /v1/admin/users/{id}/activity?{query}`.
    pub fn list_user_activity(&self, api_key: &str, id: &str, query: &str) -> impl Pending + use<> {
        self.get_authed(&format!("/v1/admin/users/{id}/activity?{query}"), api_key)
    }

    /// `GET /v1/me/activity?{query}`; `query` goes into the URL as it is (`""` for none).
    pub fn activity(&self, access_token: &str, query: &str) -> impl Pending + use<> {
        let path = if query.is_empty() {
            "/v1/me/activity".to_owned()
        } else {
            format!("/v1/me/activity?{query}")
        };
        self.get_authed(&path, access_token)
    }
}

/// Signs `email` up through `api` and returns the code the email carried to `smtp`.
pub async fn signup_code_via(api: &Api, smtp: &SmtpSink, email: &str, password: &str) -> String {
    let before = smtp.messages_to(email).len();
    let response = api.signup(email, password).await;
    assert_eq!(
        response.status().as_u16(),
        202,
        "{}",
        response.text().await.unwrap()
    );
    smtp.wait_for_nth_message_to(email, before + 1).await.code()
}

impl TestApp {
    /// Signs up `email` and returns the code the email carried.
    pub async fn signup_code(&self, email: &str, password: &str) -> String {
        signup_code_via(self, &self.smtp, email, password).await
    }

    /// Signs up and verifies `email`; returns the session body.
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let code = self.signup_code(email, password).await;
        let response = self.verify_signup(email, &code, password).await;
        assert_eq!(response.status().as_u16(), 200, "verify_signup");
        response.json().await.expect("session JSON")
    }

    pub async fn connect_db(&self) -> DatabaseConnection {
        Database::connect(&self.database.url)
            .await
            .expect("test database reachable")
    }

    /// Every outbox row addressed to `email`, oldest first. A request's rows are committed
    /// before it is answered, so what is not here after the answer will never be sent.
    pub async fn outbox_to(&self, email: &str) -> Vec<email_outbox::Model> {
        outbox_to(&self.connect_db().await, email).await
    }

    /// Waits until every outbox row addressed to `email` is recorded as sent.
    pub async fn wait_until_sent(&self, email: &str) {
        let db = self.connect_db().await;
        eventually(
            &format!("every email to {email} recorded as sent"),
            async || {
                let rows = outbox_to(&db, email).await;
                !rows.is_empty()
                    && rows
                        .iter()
                        .all(|row| row.status == email_outbox::Status::Sent)
            },
        )
        .await;
    }
}

/// Every outbox row addressed to `email`, oldest first.
pub async fn outbox_to(db: &DatabaseConnection, email: &str) -> Vec<email_outbox::Model> {
    email_outbox::Entity::find()
        .filter(email_outbox::Column::Recipient.eq(email))
        .order_by_asc(email_outbox::Column::CreatedAt)
        .all(db)
        .await
        .expect("outbox readable")
}

/// Checks `condition` until it holds (panics, naming `what`, after 20 s).
pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        // Polling: another task or process makes the condition true, on its own time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `codeward` binary with an empty environment: nothing inherited from the developer's
/// shell. Add the arguments and variables, then run or spawn it.
pub fn codeward_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_codeward"));
    command.env_clear();
    command
}

/// Runs `codeward <args>` with exactly the variables `vars` and returns what it did.
pub fn run_codeward(args: &[&str], vars: &[(&str, &str)]) -> Output {
    codeward_command()
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("codeward binary runs")
}

/// Runs `codeward <args>` against `database_url`, asserts that it succeeded and returns its
/// standard output.
pub fn run_codeward_on(database_url: &str, args: &[&str]) -> String {
    let output = run_codeward(args, &[("CODEWARD_DATABASE_URL", database_url)]);
    assert!(
        output.status.success(),
        "codeward {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts an RFC 9457 answer with the given status and code, and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries X-Request-Id"
    );
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(
        body["status"], status,
        "status field equals HTTP status: {body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:codeward:problem:{code}"),
        "{body}"
    );
    assert_title_is_stable(&body);
    assert_no_markdown(&body);
    body
}

/// Every problem of one `code` has one `title`, whichever operation and case gave it: the first
/// title seen for a code (in this test process) is the one every later answer must repeat.
fn assert_title_is_stable(body: &Value) {
    static TITLES: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    let title = body["title"].as_str().unwrap_or_default().to_owned();
    assert!(!title.is_empty(), "a title: {body}");
    let mut titles = TITLES.lock().unwrap();
    let first = titles.entry(code).or_insert_with(|| title.clone());
    assert_eq!(*first, title, "one title per code: {body}");
}

/// Text meant for a person (`detail`, `errors[].message`) is plain: no Markdown backticks.
fn assert_no_markdown(body: &Value) {
    let messages = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|error| &error["message"]);
    for text in std::iter::once(&body["detail"]).chain(messages) {
        assert!(
            !text.as_str().unwrap_or_default().contains('`'),
            "plain text: {body}"
        );
    }
}

/// Asserts the 401 every refused access token or API key gets: `unauthorized` in its one
/// wording, with the `WWW-Authenticate: Bearer error="invalid_token"` challenge that tells the
/// client its credential (sent, but not valid) should be refreshed; `why` names the case.
pub async fn assert_unauthorized(response: reqwest::Response, why: &str) {
    assert_401(response, r#"Bearer error="invalid_token""#, why).await;
}

/// Asserts the 401 a request that sent no bearer credential gets: the same `unauthorized`,
/// with the plain `WWW-Authenticate: Bearer` challenge (sign in first).
pub async fn assert_unauthenticated(response: reqwest::Response, why: &str) {
    assert_401(response, "Bearer", why).await;
}

async fn assert_401(response: reqwest::Response, challenge: &str, why: &str) {
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(challenge),
        "{why}: the challenge"
    );
    let body = assert_problem(response, 401, "unauthorized").await;
    assert_eq!(
        body["detail"],
        codeward::http::problem::UNAUTHORIZED_DETAIL,
        "{why}: one wording for every 401"
    );
}

/// Checks the shape every 429 must have and returns its `retry_after`.
pub async fn assert_rate_limited(response: reqwest::Response, policy: &str) -> u64 {
    let headers = response.headers().clone();
    let body = assert_problem(response, 429, "rate_limited").await;
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    assert_eq!(body["retry_after"], retry_after, "body and header agree");
    assert_eq!(headers["cache-control"], "no-store");
    let policy_header = headers["ratelimit-policy"].to_str().unwrap();
    assert!(
        policy_header.starts_with(&format!("\"{policy}\";q=")),
        "{policy_header}"
    );
    assert!(policy_header.contains(";w="), "{policy_header}");
    assert_eq!(
        headers["ratelimit"].to_str().unwrap(),
        format!("\"{policy}\";r=0;t={retry_after}")
    );
    retry_after
}
