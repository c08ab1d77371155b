//! Prometheus metrics: counters and histograms updated as requests and emails happen, and
//! gauges read from the database at scrape time (so every instance reports the shared truth),
//! at most once per window however often they are scraped.
//!
//! No series may depend on whether an account has an address: what a request counts, it counts
//! alike for an address with and without an account (a code request counts `issued` for the
//! void code of an unknown address too). Deliveries and the outbox gauges do follow real
//! emails, which is why production serves `/metrics` on a private listener only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{email_outbox, sessions, webhook_outbox};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub purpose: String,
    /// `issued`, `verified` or `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// `sent`, `retried` or `dead`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `delivered`, `retried` or `dead`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    /// `header_timeout` or `idle_timeout`.
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric codeward exports; cheap to clone (shared inside).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<OperationLabels, Histogram>,
    codes: Family<CodeLabels, Counter>,
    emails: Family<EmailLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_depth: Gauge,
    webhook_oldest_seconds: Gauge,
    hash_wait_seconds: Histogram,
    hash_queue_depth: Gauge,
    outbox_depth: Gauge,
    outbox_oldest_seconds: Gauge,
    active_sessions: Gauge,
    open_connections: Gauge,
    connections_closed: Family<ClosedLabels, Counter>,
    ip_quota_entries: Gauge,
    /// How long the database gauges are reused.
    gauge_window: chrono::Duration,
    /// The database gauges as last read; the lock is held while they are read, so concurrent
    /// scrapes past the window wait for one reading instead of each running its own.
    database_gauges: tokio::sync::Mutex<Option<DatabaseGauges>>,
}

/// The gauges read from the database, and when.
#[derive(Clone, Copy)]
struct DatabaseGauges {
    read_at: DateTime<Utc>,
    outbox_depth: i64,
    outbox_oldest_seconds: i64,
    webhook_depth: i64,
    webhook_oldest_seconds: i64,
    active_sessions: i64,
}

impl Default for Metrics {
    /// Metrics whose database gauges are read at every render: for metrics nobody scrapes
    /// (placeholders, benchmarks). `serve` builds them with `new`.
    fn default() -> Self {
        Self::new(chrono::Duration::zero())
    }
}

impl Metrics {
    /// Every metric, with database gauges reused for `gauge_window` after each reading.
    pub fn new(gauge_window: chrono::Duration) -> Self {
        let mut registry = Registry::with_prefix("codeward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<OperationLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let codes = Family::<CodeLabels, Counter>::default();
        let emails = Family::<EmailLabels, Counter>::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let webhook_depth = Gauge::default();
        let webhook_oldest_seconds = Gauge::default();
        let hash_wait_seconds = latency_histogram();
        let hash_queue_depth = Gauge::default();
        let outbox_depth = Gauge::default();
        let outbox_oldest_seconds = Gauge::default();
        let active_sessions = Gauge::default();
        let ip_quota_entries = Gauge::default();
        let open_connections = Gauge::default();
        let connections_closed = Family::<ClosedLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by operation and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by operation",
            request_seconds.clone(),
        );
        registry.register(
            "codes",
            "Codes issued, verified and failed by purpose",
            codes.clone(),
        );
        registry.register(
            "emails",
            "Email deliveries: sent, retried, dead",
            emails.clone(),
        );
        registry.register(
            "webhooks",
            "Webhook deliveries: delivered, retried, dead",
            webhooks.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook events not yet delivered (pending or sending)",
            webhook_depth.clone(),
        );
        registry.register(
            "webhook_oldest_pending_seconds",
            "Age of the oldest webhook event not yet delivered",
            webhook_oldest_seconds.clone(),
        );
        registry.register(
            "password_hash_wait_seconds",
            "Time a password hash waited for a free core",
            hash_wait_seconds.clone(),
        );
        registry.register(
            "password_hash_queue_depth",
            "Password hashes running or waiting",
            hash_queue_depth.clone(),
        );
        registry.register(
            "outbox_depth",
            "Emails not yet sent (pending or sending)",
            outbox_depth.clone(),
        );
        registry.register(
            "outbox_oldest_pending_seconds",
            "Age of the oldest email not yet sent",
            outbox_oldest_seconds.clone(),
        );
        registry.register(
            "active_sessions",
            "Sessions neither revoked nor expired",
            active_sessions.clone(),
        );
        registry.register(
            "ip_quota_entries",
            "Client IPs the per-IP quotas of this instance hold in memory, summed over the groups",
            ip_quota_entries.clone(),
        );
        registry.register(
            "http_open_connections",
            "Connections open on the main listener (new ones wait at CODEWARD_MAX_CONNECTIONS)",
            open_connections.clone(),
        );
        registry.register(
            "http_connections_closed",
            "Connections the server closed at a deadline: header_timeout or idle_timeout",
            connections_closed.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            requests,
            request_seconds,
            codes,
            emails,
            webhooks,
            webhook_depth,
            webhook_oldest_seconds,
            hash_wait_seconds,
            hash_queue_depth,
            outbox_depth,
            outbox_oldest_seconds,
            active_sessions,
            ip_quota_entries,
            gauge_window,
            database_gauges: tokio::sync::Mutex::new(None),
            open_connections,
            connections_closed,
        }))
    }

    pub fn request(&self, operation: &str, status: u16, elapsed: Duration) {
        let operation = operation.to_owned();
        self.0
            .requests
            .get_or_create(&RequestLabels {
                operation: operation.clone(),
                status,
            })
            .inc();
        self.0
            .request_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    pub fn code(&self, purpose: &str, outcome: &str) {
        self.0
            .codes
            .get_or_create(&CodeLabels {
                purpose: purpose.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn email(&self, outcome: &str) {
        self.0
            .emails
            .get_or_create(&EmailLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn webhook(&self, outcome: &str) {
        self.0
            .webhooks
            .get_or_create(&WebhookLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// One more (`opened`) or one fewer connection open on the main listener.
    pub fn connection(&self, opened: bool) {
        if opened {
            self.0.open_connections.inc();
        } else {
            self.0.open_connections.dec();
        }
    }

    /// A connection the server closed because a deadline passed (`header_timeout`,
    /// `idle_timeout`).
    pub fn connection_closed(&self, reason: &str) {
        self.0
            .connections_closed
            .get_or_create(&ClosedLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn hash_waited(&self, waited: Duration) {
        self.0.hash_wait_seconds.observe(waited.as_secs_f64());
    }

    pub fn hash_queue_depth(&self, depth: usize) {
        self.0
            .hash_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Client IPs the per-IP quotas hold (read from memory at every scrape).
    pub fn ip_quota_entries(&self, entries: usize) {
        self.0
            .ip_quota_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The text exposition. The database gauges are those read within the window before `now`,
    /// or read now: each scrape would otherwise cost five queries, and anyone who can reach
    /// `/metrics` could make the database run them as fast as they can ask.
    pub async fn render(
        &self,
        db: &DatabaseConnection,
        now: DateTime<Utc>,
    ) -> Result<String, RenderError> {
        let gauges = {
            let mut last = self.0.database_gauges.lock().await;
            let fresh = last.filter(|gauges| {
                let age = now - gauges.read_at;
                age >= chrono::Duration::zero() && age < self.0.gauge_window
            });
            match fresh {
                Some(gauges) => gauges,
                None => {
                    let gauges = read_database_gauges(db, now).await?;
                    *last = Some(gauges);
                    gauges
                }
            }
        };
        self.0.outbox_depth.set(gauges.outbox_depth);
        self.0
            .outbox_oldest_seconds
            .set(gauges.outbox_oldest_seconds);
        self.0.webhook_depth.set(gauges.webhook_depth);
        self.0
            .webhook_oldest_seconds
            .set(gauges.webhook_oldest_seconds);
        self.0.active_sessions.set(gauges.active_sessions);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)
            .map_err(RenderError::Encoding)?;
        Ok(text)
    }
}

/// The queries behind the database gauges.
async fn read_database_gauges(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<DatabaseGauges, sea_orm::DbErr> {
    let unsent = [email_outbox::Status::Pending, email_outbox::Status::Sending];
    let depth = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.is_in(unsent))
        .count(db)
        .await?;
    let oldest = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.is_in(unsent))
        .order_by_asc(email_outbox::Column::CreatedAt)
        .one(db)
        .await?
        .map_or(0, |row| (now - row.created_at).num_seconds().max(0));
    let open = [
        webhook_outbox::Status::Pending,
        webhook_outbox::Status::Sending,
    ];
    let webhook_depth = webhook_outbox::Entity::find()
        .filter(webhook_outbox::Column::Status.is_in(open))
        .count(db)
        .await?;
    let webhook_oldest = webhook_outbox::Entity::find()
        .filter(webhook_outbox::Column::Status.is_in(open))
        .order_by_asc(webhook_outbox::Column::CreatedAt)
        .one(db)
        .await?
        .map_or(0, |row| (now - row.created_at).num_seconds().max(0));
    let active = sessions::Entity::find()
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::RefreshExpiresAt.gt(now))
        .count(db)
        .await?;
    Ok(DatabaseGauges {
        read_at: now,
        outbox_depth: i64::try_from(depth).unwrap_or(i64::MAX),
        outbox_oldest_seconds: oldest,
        webhook_depth: i64::try_from(webhook_depth).unwrap_or(i64::MAX),
        webhook_oldest_seconds: webhook_oldest,
        active_sessions: i64::try_from(active).unwrap_or(i64::MAX),
    })
}

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot encode the metrics")]
    Encoding(#[source] std::fmt::Error),
}

/// Maps a request (method and path) to its OpenAPI operation id, for metric labels; built from
/// the spec itself so it cannot drift from the routes.
pub struct OperationIndex(Vec<(String, Vec<String>, String)>);

impl OperationIndex {
    pub fn from_spec(spec_json: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        let mut routes = Vec::new();
        for (path, operations) in spec["paths"].as_object().into_iter().flatten() {
            let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
            for (method, operation) in operations.as_object().into_iter().flatten() {
                if let Some(id) = operation["operationId"].as_str() {
                    routes.push((method.to_ascii_uppercase(), segments.clone(), id.to_owned()));
                }
            }
        }
        Self(routes)
    }

    /// The operation id, or `other` (docs, spec, unknown paths): labels stay few.
    pub fn operation(&self, method: &str, path: &str) -> &str {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(m, pattern, _)| {
                m == method
                    && pattern.len() == segments.len()
                    && pattern
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p.starts_with('{') || p == s)
            })
            .map_or("other", |(_, _, id)| id.as_str())
    }
}
