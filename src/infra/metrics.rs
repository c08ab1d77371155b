//! Prometheus metrics: counters and histograms updated as requests and emails happen, and
//! gauges read from the database at scrape time (so every instance reports the shared truth).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use entity::{email_outbox, sessions};
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
    hash_wait_seconds: Histogram,
    hash_queue_depth: Gauge,
    outbox_depth: Gauge,
    outbox_oldest_seconds: Gauge,
    active_sessions: Gauge,
    open_connections: Gauge,
    connections_closed: Family<ClosedLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("codeward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<OperationLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let codes = Family::<CodeLabels, Counter>::default();
        let emails = Family::<EmailLabels, Counter>::default();
        let hash_wait_seconds = latency_histogram();
        let hash_queue_depth = Gauge::default();
        let outbox_depth = Gauge::default();
        let outbox_oldest_seconds = Gauge::default();
        let active_sessions = Gauge::default();
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
            hash_wait_seconds,
            hash_queue_depth,
            outbox_depth,
            outbox_oldest_seconds,
            active_sessions,
            open_connections,
            connections_closed,
        }))
    }
}

impl Metrics {
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

    /// The text exposition, after reading the database-backed gauges.
    pub async fn render(&self, db: &DatabaseConnection) -> Result<String, RenderError> {
        let now = Utc::now();
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
        let active = sessions::Entity::find()
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .filter(sessions::Column::RefreshExpiresAt.gt(now))
            .count(db)
            .await?;
        self.0
            .outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.0.outbox_oldest_seconds.set(oldest);
        self.0
            .active_sessions
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)
            .map_err(RenderError::Encoding)?;
        Ok(text)
    }
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
