//! The webhook worker inside `serve`: claims due events (the oldest open one of each user),
//! POSTs them signed to `CODEWARD_WEBHOOK_URL`, and records the outcome through the generic
//! queue: any 2xx is delivered; any other answer, a timeout or a network error is retried with
//! jittered backoff until the attempts are spent, then the event is dead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use entity::webhook_outbox;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::config::{Config, WebhookSecret};
use crate::core::queue::{self, Outcome, RetryPolicy, Signal};
use crate::core::webhooks::{outbox, signature};
use crate::infra::clock::Clock;
use crate::infra::metrics::Metrics;

/// Where and how events are delivered, from the configuration.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub secret: WebhookSecret,
    /// For one attempt: resolving, connecting, sending and reading the answer.
    pub timeout: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub retry: RetryPolicy,
}

impl WebhookSettings {
    /// The settings when a URL is configured (`validate` made sure a secret comes with it).
    pub fn from_config(config: &Config) -> Option<Self> {
        Some(Self {
            url: config.webhook_url.clone()?,
            secret: config.webhook_secret.clone()?,
            timeout: Duration::from_secs(config.webhook_timeout_secs),
            lease: Duration::from_secs(config.webhook_lease_secs),
            poll_interval: Duration::from_millis(config.webhook_poll_ms),
            batch_size: config.webhook_batch_size,
            retry: RetryPolicy {
                base: Duration::from_millis(config.webhook_retry_base_ms),
                max: Duration::from_secs(config.webhook_retry_max_secs),
                max_attempts: config.webhook_max_attempts,
            },
        })
    }
}

#[derive(Clone)]
pub struct WebhookWorker {
    pub db: DatabaseConnection,
    pub settings: Arc<WebhookSettings>,
    pub signal: Signal,
    pub clock: Clock,
    pub metrics: Metrics,
}

impl WebhookWorker {
    /// Delivers until `stop` turns true; a batch in flight is finished first.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        tracing::info!(url = %masked(&self.settings.url), "webhook delivery worker started");
        let (signal, poll) = (self.signal.clone(), self.settings.poll_interval);
        // Any claim may have let a user's next event become due: go again at once.
        queue::run("webhook outbox", &signal, poll, 1, stop, || {
            self.deliver_due()
        })
        .await;
        tracing::info!("webhook delivery worker stopped");
    }

    /// Claims a batch and delivers it concurrently (one event per user); returns its size.
    pub async fn deliver_due(&self) -> Result<usize, sea_orm::DbErr> {
        let now = self.clock.now();
        let lease_until =
            now + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX);
        let batch = outbox::claim(&self.db, now, lease_until, self.settings.batch_size).await?;
        let claimed = batch.len();
        let mut deliveries = tokio::task::JoinSet::new();
        for row in batch {
            let worker = self.clone();
            deliveries.spawn(async move { worker.deliver(row).await });
        }
        while let Some(result) = deliveries.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "webhook delivery task failed");
            }
        }
        Ok(claimed)
    }

    async fn deliver(&self, row: webhook_outbox::Model) {
        let Some(token) = row.claim_token else { return };
        let attempt = post(&self.settings, &row, self.clock.now().timestamp()).await;
        let outcome = match attempt {
            Ok(()) => {
                tracing::info!(id = %row.id, event = %row.event_type, attempts = row.attempts, "webhook delivered");
                self.metrics.webhook("delivered");
                Outcome::Done(self.clock.now())
            }
            Err(error) => {
                let attempts = u32::try_from(row.attempts).unwrap_or(0);
                match self.settings.retry.next_attempt(attempts, self.clock.now()) {
                    Some(retry_at) => {
                        tracing::warn!(id = %row.id, event = %row.event_type, %error, attempts = row.attempts, %retry_at, "webhook delivery failed; will retry");
                        self.metrics.webhook("retried");
                        Outcome::Retry(retry_at, error)
                    }
                    None => {
                        tracing::error!(id = %row.id, event = %row.event_type, %error, attempts = row.attempts, "webhook given up after too many attempts");
                        self.metrics.webhook("dead");
                        Outcome::Dead(format!("gave up after {} attempts: {error}", row.attempts))
                    }
                }
            }
        };
        queue::record_outcome(&self.db, &outbox::QUEUE, row.id, token, &outcome).await;
    }
}

/// One attempt: resolves the URL's host once, then POSTs to that very address (a client made
/// for this attempt, told the address with `resolve`, so the address connected to is the one
/// resolved, never a second lookup's; no proxy, no redirect followed). `Err` says why it did
/// not count as delivered, without the URL (which may carry a token).
async fn post(
    settings: &WebhookSettings,
    row: &webhook_outbox::Model,
    timestamp: i64,
) -> Result<(), String> {
    let url = &settings.url;
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .pool_max_idle_per_host(0)
        .user_agent(concat!("codeward-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(url::Host::Domain(host)) = url.host() {
        let address = resolve(
            host,
            url.port_or_known_default().unwrap_or(443),
            settings.timeout,
        )
        .await?;
        client = client.resolve(host, address);
    }
    let client = client
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
    let id = row.id.to_string();
    let signature = signature::sign(&settings.secret, &id, timestamp, &row.payload);
    let answer = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(row.payload.clone())
        .send()
        .await
        .map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            format!("request {kind}: {}", e.without_url())
        })?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// The first address `host` resolves to, within `timeout`.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)));
    match lookup.await {
        Err(_) => Err(format!("resolving {host} timed out")),
        Ok(Err(error)) => Err(format!("cannot resolve {host}: {error}")),
        Ok(Ok(mut addresses)) => addresses
            .next()
            .ok_or_else(|| format!("{host} resolves to no address")),
    }
}

/// The URL for the log: scheme, host, port and path; no credentials, no query.
fn masked(url: &url::Url) -> String {
    format!(
        "{}://{}{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path()
    )
}
