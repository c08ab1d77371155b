//! `spawn_app()`: the real server on port 0 against a fresh database of its own.

use std::time::Duration;

use clap::Parser;
use codeward::cli::Cli;
use codeward::config::Config;
use codeward::core::mail::OutboxSignal;
use codeward::infra::clock::Clock;
use codeward::startup::Application;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::Value;
use tempfile::TempDir;

use crate::smtp::SmtpSink;

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

/// Configuration for a test app: the given flags on top of port 0, the test database and a
/// private mailbox folder.
pub fn test_config(database_url: &str, mailbox: &TempDir, extra: &[&str]) -> Config {
    let mut args = vec![
        "codeward".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--database-url={database_url}"),
        format!("--mailbox-dir={}", mailbox.path().display()),
        "--database-max-connections=5".to_owned(),
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
    /// The instance's clock; `advance` it to expire codes and tokens without sleeping.
    pub clock: Clock,
    /// Where `/metrics` is served when `--metrics-listen` was given.
    pub metrics_port: Option<u16>,
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
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Instance {
        address: format!("http://127.0.0.1:{port}"),
        outbox,
        clock,
        metrics_port,
        shutdown: Some(shutdown),
        server: Some(server),
        _mailbox: mailbox,
    }
}

/// A server, its own fresh database and its own SMTP sink.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    pub smtp: SmtpSink,
    pub instance: Instance,
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
        address: instance.address.clone(),
        client: http_client(),
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

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Posts JSON. The body is serialized before the future is returned, so many posts can
    /// be built from temporaries and awaited together.
    pub fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> impl std::future::Future<Output = reqwest::Response> + use<> {
        let request = self.client.post(self.url(path)).json(body);
        async move { request.send().await.expect("request sent") }
    }

    pub async fn get_authed(&self, path: &str, access_token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request sent")
    }

    /// Signs up `email` and returns the code the email carried.
    pub async fn signup_code(&self, email: &str, password: &str) -> String {
        let before = self.smtp.messages_to(email).len();
        let response = self
            .post(
                "/v1/signup",
                &serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            response.status().as_u16(),
            202,
            "{}",
            response.text().await.unwrap()
        );
        self.smtp
            .wait_for_nth_message_to(email, before + 1)
            .await
            .code()
    }

    /// Signs up and verifies `email`; returns the session body.
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let code = self.signup_code(email, password).await;
        let response = self
            .post(
                "/v1/signup/verify",
                &serde_json::json!({"email": email, "code": code, "password": password}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "verify_signup");
        response.json().await.expect("session JSON")
    }

    pub async fn connect_db(&self) -> DatabaseConnection {
        Database::connect(&self.database.url)
            .await
            .expect("test database reachable")
    }
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
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    body
}
