//! Configuration: one `Config`, every field a flag and a `CODEWARD_*` environment variable.
//!
//! The flag and variable names are part of the operator contract (docs/operations.md, "Configuration").
//! Secrets are typed so that `Debug` and `check-config` never print them.

mod describe;
mod rate;
mod secrets;
mod tokens;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use secrecy::SecretString;

pub use describe::markdown_table;
pub use rate::Rate;
use secrets::wrap_secret;
pub use secrets::{DEV_PEPPER_KEY_ID, DatabaseUrl, Pepper, Peppers, SmtpUrl, WebhookSecret};
pub use tokens::{TokenAlgorithm, TokenSettings};
pub use validate::ConfigError;

/// The product name emails carry until `CODEWARD_APP_NAME` names the operator's own.
const DEFAULT_APP_NAME: &str = "codeward";

/// Which rules apply to secrets and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    /// Insecure fixed dev pepper allowed (with a warning) while emails go to a folder; with
    /// an SMTP server, a pepper of your own is required.
    Development,
    /// Missing or weak secrets stop the start.
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of codeward. Global, so flags may stand before or after the subcommand.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address and port the HTTP server listens on (port 0 picks a free one).
    #[arg(
        long,
        env = "CODEWARD_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this address instead of the main listener (keep it private). In
    /// production the main listener never serves them, so this is the only way to scrape.
    #[arg(long, env = "CODEWARD_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Seconds the gauges read from the database (outbox depth and age, active sessions) are
    /// reused, so scrapes cost at most one set of queries per window; 0 reads them every time.
    #[arg(long, env = "CODEWARD_METRICS_CACHE_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300), global = true)]
    pub metrics_cache_secs: u64,

    /// Database URL: sqlite://…, postgres://… or mysql://… (MariaDB too).
    #[arg(
        long,
        env = "CODEWARD_DATABASE_URL",
        default_value = "sqlite://codeward.db?mode=rwc",
        value_parser = wrap_secret::<DatabaseUrl>,
        hide_env_values = true,
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Most database connections per instance.
    #[arg(long, env = "CODEWARD_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: u32,

    /// Do not apply pending migrations when `serve` starts (run `codeward migrate up` yourself).
    #[arg(long, env = "CODEWARD_SKIP_MIGRATIONS", global = true)]
    pub skip_migrations: bool,

    /// `development` or `production`; production refuses missing or weak secrets.
    #[arg(
        long = "env",
        env = "CODEWARD_ENV",
        value_enum,
        default_value = "development",
        global = true
    )]
    pub environment: Environment,

    /// Current key for hashing codes and counters: `<key id>:<base64 of ≥32 bytes>`.
    #[arg(long = "pepper", env = "CODEWARD_PEPPER", value_parser = wrap_secret::<SecretString>,
          hide_env_values = true, global = true)]
    pepper_setting: Option<SecretString>,

    /// Retired keys that still verify what they hashed, comma-separated, same form.
    #[arg(long = "previous-peppers", env = "CODEWARD_PREVIOUS_PEPPERS",
          value_parser = wrap_secret::<SecretString>, hide_env_values = true, global = true)]
    previous_peppers_setting: Option<SecretString>,

    /// The parsed keys; `validate` sets them (the development pepper until then).
    #[arg(skip)]
    pub peppers: Peppers,

    /// SMTP server: smtp://user:pass@host:port?tls=required|opportunistic or smtps://…
    /// Unset: emails are written to the mailbox folder instead.
    #[arg(long, env = "CODEWARD_SMTP_URL", value_parser = wrap_secret::<SmtpUrl>,
          hide_env_values = true, global = true)]
    pub smtp_url: Option<SmtpUrl>,

    /// Folder the development mailbox writes `.eml` files into when no SMTP URL is set.
    #[arg(
        long,
        env = "CODEWARD_MAILBOX_DIR",
        default_value = "./mailbox",
        global = true
    )]
    pub mailbox_dir: PathBuf,

    /// Sender of every email, e.g. `Example <no-reply@example.com>`. Production refuses one at
    /// localhost, a `.local` name or an IP address, the default included.
    #[arg(
        long,
        env = "CODEWARD_MAIL_FROM",
        default_value = "codeward <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// Folder whose `.txt`/`.html` files override the built-in email templates, file by file.
    #[arg(long, env = "CODEWARD_TEMPLATE_DIR", global = true)]
    pub template_dir: Option<PathBuf>,

    /// Seconds an SMTP connection or command may take before the attempt counts as failed.
    #[arg(long, env = "CODEWARD_SMTP_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub smtp_timeout_secs: u64,

    /// Emails one instance claims and sends at a time.
    #[arg(long, env = "CODEWARD_EMAIL_BATCH_SIZE", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256), global = true)]
    pub email_batch_size: u32,

    /// Seconds a claimed email is reserved for its worker; a claim whose worker died is
    /// retried after this. Keep it well above the SMTP timeout.
    #[arg(long, env = "CODEWARD_EMAIL_LEASE_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(5..=3600), global = true)]
    pub email_lease_secs: u64,

    /// Milliseconds between outbox polls (retries, other instances' emails); emails enqueued by
    /// this instance are picked up within 100 ms.
    #[arg(long, env = "CODEWARD_EMAIL_POLL_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(10..=60_000), global = true)]
    pub email_poll_ms: u64,

    /// Milliseconds before the first retry of a failed email; doubles each attempt, jittered.
    #[arg(long, env = "CODEWARD_EMAIL_RETRY_BASE_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(10..=600_000), global = true)]
    pub email_retry_base_ms: u64,

    /// Longest wait between two attempts at an email, in seconds.
    #[arg(long, env = "CODEWARD_EMAIL_RETRY_MAX_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub email_retry_max_secs: u64,

    /// Attempts at an email before it is given up as dead.
    #[arg(long, env = "CODEWARD_EMAIL_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub email_max_attempts: u32,

    /// Where events are POSTed (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`), an http:// or https:// URL. Unset: no webhooks, and no events are
    /// recorded.
    #[arg(long, env = "CODEWARD_WEBHOOK_URL", global = true)]
    pub webhook_url: Option<url::Url>,

    /// The key webhooks are signed with: `whsec_` + base64 of 24 to 64 random bytes (e.g.
    /// `echo "whsec_$(openssl rand -base64 32)"`). Required with CODEWARD_WEBHOOK_URL.
    #[arg(long = "webhook-secret", env = "CODEWARD_WEBHOOK_SECRET",
          value_parser = wrap_secret::<SecretString>, hide_env_values = true, global = true)]
    webhook_secret_setting: Option<SecretString>,

    /// The parsed webhook key; `validate` sets it when CODEWARD_WEBHOOK_SECRET is given.
    #[arg(skip)]
    pub webhook_secret: Option<WebhookSecret>,

    /// Attempts at delivering an event before it is given up as dead.
    #[arg(long, env = "CODEWARD_WEBHOOK_MAX_ATTEMPTS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub webhook_max_attempts: u32,

    /// Seconds one delivery attempt may take (resolving, connecting, sending and the answer)
    /// before it counts as failed.
    #[arg(long, env = "CODEWARD_WEBHOOK_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub webhook_timeout_secs: u64,

    /// Milliseconds before the first retry of a failed delivery; doubles each attempt, jittered
    /// (each wait is between half and all of it).
    #[arg(long, env = "CODEWARD_WEBHOOK_RETRY_BASE_MS", default_value_t = 4000,
          value_parser = clap::value_parser!(u64).range(10..=600_000), global = true)]
    pub webhook_retry_base_ms: u64,

    /// Longest wait between two attempts at an event, in seconds.
    #[arg(long, env = "CODEWARD_WEBHOOK_RETRY_MAX_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub webhook_retry_max_secs: u64,

    /// Milliseconds between polls for due events (retries, other instances' events); events
    /// recorded by this instance are picked up at once.
    #[arg(long, env = "CODEWARD_WEBHOOK_POLL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000), global = true)]
    pub webhook_poll_ms: u64,

    /// Events one instance claims and delivers at a time (at most one per user).
    #[arg(long, env = "CODEWARD_WEBHOOK_BATCH_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=256), global = true)]
    pub webhook_batch_size: u32,

    /// Seconds a claimed event is reserved for its worker; a claim whose worker died is retried
    /// after this. Longer than the timeout.
    #[arg(long, env = "CODEWARD_WEBHOOK_LEASE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(5..=3600), global = true)]
    pub webhook_lease_secs: u64,

    /// Product name shown in email subjects and bodies; production warns while it is the default.
    #[arg(
        long,
        env = "CODEWARD_APP_NAME",
        default_value = DEFAULT_APP_NAME,
        global = true
    )]
    pub app_name: String,

    /// Proxies whose X-Forwarded-For is believed, as a comma-separated CIDR list.
    #[arg(
        long,
        env = "CODEWARD_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Log line format: `text` for people, `json` for log collectors.
    #[arg(
        long,
        env = "CODEWARD_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax.
    #[arg(long, env = "CODEWARD_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CODEWARD_MAX_BODY_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024), global = true)]
    pub max_body_bytes: u64,

    /// Seconds a client has to send a request's headers in full: a new connection's first
    /// request from the moment it is accepted, each later one (HTTP/1.1) from its first byte.
    /// Past this the connection is closed.
    #[arg(long, env = "CODEWARD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in progress (or, during a request,
    /// with nothing read or written); then it is closed. Keep it above the idle timeout of the
    /// proxy or load balancer in front, or it may reuse a connection codeward is closing.
    #[arg(long, env = "CODEWARD_IDLE_TIMEOUT_SECS", default_value_t = 75,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub idle_timeout_secs: u64,

    /// Connections a listener keeps open at once; past this, new ones wait in the listen
    /// backlog until one closes.
    #[arg(long, env = "CODEWARD_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Concurrent streams (requests) one HTTP/2 connection may open (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "CODEWARD_HTTP2_MAX_STREAMS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub http2_max_streams: u32,

    /// Largest request head accepted, in bytes (request line and headers; for HTTP/2 the
    /// header list); larger is answered 431 (over HTTP/1.1, the connection then closes).
    #[arg(long, env = "CODEWARD_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024), global = true)]
    pub max_header_bytes: u32,

    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "CODEWARD_SHUTDOWN_GRACE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub shutdown_grace_secs: u64,

    /// Seconds a code stays valid.
    #[arg(long, env = "CODEWARD_CODE_TTL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub code_ttl_secs: u64,

    /// Wrong attempts a code survives; then it is dead even for the right digits.
    #[arg(long, env = "CODEWARD_CODE_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20), global = true)]
    pub code_max_attempts: u32,

    /// Seconds before another code may be sent to the same address for the same purpose.
    #[arg(long, env = "CODEWARD_CODE_RESEND_COOLDOWN_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub code_resend_cooldown_secs: u64,

    /// Wrong code attempts allowed per user and purpose from one client network (an IPv4
    /// address or an IPv6 /64) in 24 hours, across all codes: a stranger guessing from one
    /// network spends this, not the owner's.
    #[arg(long, env = "CODEWARD_CODE_DAILY_FAILURE_BUDGET", default_value_t = 25,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub code_daily_failure_budget: u32,

    /// Wrong code attempts allowed per user and purpose from all networks together in 24
    /// hours, across all codes (NIST SP 800-63B's ceiling of 100); at least the per-network
    /// budget.
    #[arg(long, env = "CODEWARD_CODE_DAILY_FAILURE_CEILING", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub code_daily_failure_ceiling: u32,

    /// Codes one address may be sent per hour, all purposes together.
    #[arg(long, env = "CODEWARD_CODES_PER_ADDRESS_PER_HOUR", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub codes_per_address_per_hour: u32,

    /// Failed sign-ins per address (and wrong current passwords at a password change, per
    /// account) within the window before each further one is delayed.
    #[arg(long, env = "CODEWARD_LOGIN_FAILURES_BEFORE_DELAY", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub login_failures_before_delay: u32,

    /// Seconds over which failed sign-ins of an address (wrong current passwords of an
    /// account) are counted.
    #[arg(long, env = "CODEWARD_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub login_failure_window_secs: u64,

    /// Longest delay imposed on an address after failed sign-ins (on an account after wrong
    /// current passwords), in seconds (it starts at 30 s and doubles with each further
    /// failure).
    #[arg(long, env = "CODEWARD_LOGIN_MAX_DELAY_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(30..=86_400), global = true)]
    pub login_max_delay_secs: u64,

    /// Operations that must not reveal whether an account exists (signup, resend, verify,
    /// login, forgot, check, reset, request and verify a login code, request an email change)
    /// answer a whole number of these milliseconds after they
    /// began, so small differences in how long their work took (which rows were cached, say)
    /// do not show; 0 turns this off.
    #[arg(long, env = "CODEWARD_EQUAL_TIME_STEP_MS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=1000), global = true)]
    pub equal_time_step_ms: u64,

    /// Per-IP quota of the operations that email a code: signup, resend_signup_code,
    /// forgot_password, request_login_code, request_reauth_code and request_email_change (`N/s`,
    /// `N/min`, `N/h`).
    /// Every per-IP quota counts per client network: an IPv4 address, or an IPv6 /64.
    #[arg(
        long,
        env = "CODEWARD_IP_RATE_SEND_CODE",
        default_value = "10/min",
        global = true
    )]
    pub ip_rate_send_code: Rate,

    /// Per-IP quota of the operations that check a code: verify_signup, check_reset_code,
    /// reset_password, verify_login_code, reauthenticate and verify_email_change.
    #[arg(
        long,
        env = "CODEWARD_IP_RATE_VERIFY_CODE",
        default_value = "30/min",
        global = true
    )]
    pub ip_rate_verify_code: Rate,

    /// Per-IP quota of login and change_password.
    #[arg(
        long,
        env = "CODEWARD_IP_RATE_LOGIN",
        default_value = "20/min",
        global = true
    )]
    pub ip_rate_login: Rate,

    /// Per-IP quota of refresh_token.
    #[arg(
        long,
        env = "CODEWARD_IP_RATE_REFRESH",
        default_value = "60/min",
        global = true
    )]
    pub ip_rate_refresh: Rate,

    /// Seconds an access token lives.
    #[arg(long, env = "CODEWARD_ACCESS_TOKEN_TTL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=86_400), global = true)]
    pub access_token_ttl_secs: u64,

    /// Seconds a refresh token stays usable without being used (each use rotates it).
    #[arg(long, env = "CODEWARD_REFRESH_TOKEN_IDLE_SECS", default_value_t = 30 * 86_400,
          value_parser = clap::value_parser!(u64).range(60..=366 * 86_400), global = true)]
    pub refresh_token_idle_secs: u64,

    /// Seconds after its rotation during which a refresh token presented again still gets a
    /// new pair for its session (two requests racing from one app); later it is a replay and
    /// ends the session. 0: every reuse is a replay.
    #[arg(long, env = "CODEWARD_REFRESH_REUSE_GRACE_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=300), global = true)]
    pub refresh_reuse_grace_secs: u64,

    /// Whether new accounts may be created: by `signup`, and by `request_login_code` with
    /// `create_account`. While false (invite-only apps), both answer their usual 202, send
    /// nothing and create nothing; existing accounts still sign in.
    #[arg(long, env = "CODEWARD_SIGNUP_OPEN", default_value_t = true,
          action = clap::ArgAction::Set, global = true)]
    pub signup_open: bool,

    #[command(flatten)]
    pub tokens: TokenSettings,

    /// Seconds after a sign-in or re-authentication during which a session may delete the
    /// account, change its email address, or set a password without the current one; later,
    /// 403 `reauthentication_required` until it re-authenticates.
    #[arg(long, env = "CODEWARD_REAUTH_MAX_AGE_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(60..=7 * 86_400), global = true)]
    pub reauth_max_age_secs: u64,

    /// Seconds after which a session ends however actively it is used.
    #[arg(long, env = "CODEWARD_SESSION_MAX_SECS", default_value_t = 90 * 86_400,
          value_parser = clap::value_parser!(u64).range(60..=3660 * 86_400), global = true)]
    pub session_max_secs: u64,

    /// Live sessions one user may have; a new sign-in past this revokes the least recently
    /// used one.
    #[arg(long, env = "CODEWARD_MAX_SESSIONS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000), global = true)]
    pub max_sessions_per_user: u64,

    /// Seconds finished rows are kept (used codes, ended sessions, sent or dead emails)
    /// before housekeeping removes them.
    #[arg(long, env = "CODEWARD_RETENTION_SECS", default_value_t = 7 * 86_400,
          value_parser = clap::value_parser!(u64).range(3600..=3660 * 86_400), global = true)]
    pub retention_secs: u64,

    /// Seconds an account whose address was never verified is kept after its last sign-up
    /// and its last code; then housekeeping removes it with its codes and budgets.
    #[arg(long, env = "CODEWARD_UNVERIFIED_RETENTION_SECS", default_value_t = 7 * 86_400,
          value_parser = clap::value_parser!(u64).range(3600..=3660 * 86_400), global = true)]
    pub unverified_retention_secs: u64,

    /// Seconds audit events are kept (what `GET /v1/me/activity` can show).
    #[arg(long, env = "CODEWARD_AUDIT_RETENTION_SECS", default_value_t = 365 * 86_400,
          value_parser = clap::value_parser!(u64).range(86_400..=3660 * 86_400), global = true)]
    pub audit_retention_secs: u64,

    /// Seconds between two housekeeping runs inside `serve` (0: never; use `codeward purge`).
    #[arg(long, env = "CODEWARD_HOUSEKEEPING_INTERVAL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(0..=86_400), global = true)]
    pub housekeeping_interval_secs: u64,

    /// Seconds between two sweeps that forget client IPs whose per-IP quota is full again, so
    /// memory follows the active clients; runs whatever the housekeeping interval.
    #[arg(long, env = "CODEWARD_IP_QUOTA_PRUNE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub ip_quota_prune_secs: u64,

    /// Rows one housekeeping statement deletes at most, so none holds locks for long.
    #[arg(long, env = "CODEWARD_PURGE_BATCH_SIZE", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub purge_batch_size: u64,

    /// Password hashes running or waiting at once; past this, 503 `overloaded`.
    #[arg(long, env = "CODEWARD_PASSWORD_HASH_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub password_hash_queue: u32,

    /// argon2id memory cost in KiB.
    #[arg(long, env = "CODEWARD_ARGON2_MEMORY_KIB", default_value_t = 19_456,
          value_parser = clap::value_parser!(u32).range(8..=4_194_304), global = true)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (time cost).
    #[arg(long, env = "CODEWARD_ARGON2_ITERATIONS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub argon2_iterations: u32,
}

impl Config {
    pub fn access_token_ttl(&self) -> chrono::Duration {
        seconds(self.access_token_ttl_secs)
    }

    pub fn refresh_token_idle(&self) -> chrono::Duration {
        seconds(self.refresh_token_idle_secs)
    }

    pub fn refresh_reuse_grace(&self) -> chrono::Duration {
        seconds(self.refresh_reuse_grace_secs)
    }

    pub fn reauth_max_age(&self) -> chrono::Duration {
        seconds(self.reauth_max_age_secs)
    }

    pub fn signing_key_rotation(&self) -> chrono::Duration {
        seconds(self.tokens.signing_key_rotation_secs)
    }

    pub fn signing_key_prepublish(&self) -> chrono::Duration {
        seconds(self.tokens.signing_key_prepublish_secs)
    }

    /// The `iss` of every access token.
    pub fn issuer(&self) -> String {
        self.tokens.issuer(self.listen)
    }

    pub fn session_max(&self) -> chrono::Duration {
        seconds(self.session_max_secs)
    }

    pub fn code_ttl(&self) -> chrono::Duration {
        seconds(self.code_ttl_secs)
    }

    pub fn code_resend_cooldown(&self) -> chrono::Duration {
        seconds(self.code_resend_cooldown_secs)
    }

    pub fn login_failure_window(&self) -> chrono::Duration {
        seconds(self.login_failure_window_secs)
    }

    pub fn login_max_delay(&self) -> chrono::Duration {
        seconds(self.login_max_delay_secs)
    }

    pub fn retention(&self) -> chrono::Duration {
        seconds(self.retention_secs)
    }

    pub fn audit_retention(&self) -> chrono::Duration {
        seconds(self.audit_retention_secs)
    }

    pub fn unverified_retention(&self) -> chrono::Duration {
        seconds(self.unverified_retention_secs)
    }

    pub fn metrics_cache(&self) -> chrono::Duration {
        seconds(self.metrics_cache_secs)
    }

    /// Whether the main (public) listener serves `/metrics`: only in development, and only
    /// while no listener of their own is set. In production a scrape would let anyone watch
    /// counters move with their own requests.
    pub fn metrics_on_main_listener(&self) -> bool {
        self.metrics_listen.is_none() && self.environment == Environment::Development
    }
}

/// Every setting given in seconds becomes a duration here, in one place.
fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The settings these flags give, as `codeward` would parse them.
    pub(crate) fn test_config(flags: &[&str]) -> Config {
        use clap::{Args as _, FromArgMatches as _};
        let command = Config::augment_args(clap::Command::new("codeward"));
        let args = std::iter::once("codeward").chain(flags.iter().copied());
        Config::from_arg_matches(&command.get_matches_from(args)).unwrap()
    }

    #[test]
    fn debug_output_of_the_whole_config_holds_no_secret() {
        let mut config = test_config(&[
            "--pepper=k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=",
            "--smtp-url=smtp://u:smtp-hunter2@mail:587",
            "--database-url=postgres://u:db-hunter2@db/codeward",
        ]);
        config.validate().unwrap();

        let debug = format!("{config:?}");

        for secret in [
            "rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=",
            "smtp-hunter2",
            "db-hunter2",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("k1:<secret>"), "{debug}");
    }
}
