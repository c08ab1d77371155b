//! Tag `ops`: what an operator reads about a running instance.

use crate::app::Services;
use crate::infra::metrics::RenderError;

/// The metrics in the Prometheus text format: this instance's counters, the entries of its
/// per-IP quotas, and the database gauges (read at most once per `CODEWARD_METRICS_CACHE_SECS`).
pub async fn metrics(services: &Services) -> Result<String, RenderError> {
    services
        .metrics
        .ip_quota_entries(services.ip_limits.entries());
    services
        .metrics
        .render(&services.reads, services.clock.now())
        .await
}
