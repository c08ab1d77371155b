//! Operations endpoints: liveness and readiness probes.

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::http::problem::{InternalError, Problem, ProblemCode, ProblemJson};
use crate::http::{ApiTags, AppState};
use crate::infra::db;

pub struct OpsApi;

/// A probe's answer.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ProbeStatus {
    /// `ok` for liveness, `ready` for readiness.
    pub status: String,
}

impl Example for ProbeStatus {
    fn example() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process is up and answering.
    #[oai(status = 200)]
    Ok(Json<ProbeStatus>),
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database is reachable and every migration is applied.
    #[oai(status = 200)]
    Ready(Json<ProbeStatus>),
    /// Not ready: `detail` says whether the database is unreachable or migrations are pending.
    #[oai(status = 503)]
    NotReady(ProblemJson),
}

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text exposition format.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// `not_found`: metrics are not served on this listener (in production, or when
    /// `CODEWARD_METRICS_LISTEN` names a listener of their own, which serves them).
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

#[OpenApi(tag = "ApiTags::Ops")]
impl OpsApi {
    /// Liveness probe
    ///
    /// Answers 200 while the process runs; it touches nothing else, so an orchestrator never
    /// restarts codeward for a database outage.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(ProbeStatus {
            status: "ok".to_owned(),
        }))
    }

    /// Readiness probe
    ///
    /// Answers 200 when the database is reachable and every migration is applied, else 503, so
    /// a load balancer sends traffic only to instances that can serve it.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        match db::readiness(&state.reads).await {
            Ok(()) => ReadyResponse::Ready(Json(ProbeStatus {
                status: "ready".to_owned(),
            })),
            Err(reason) => {
                tracing::warn!(%reason, "not ready");
                ReadyResponse::NotReady(ProblemJson(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::NotReady,
                    reason,
                )))
            }
        }
    }

    /// Prometheus metrics
    ///
    /// Requests by operation and status with latency histograms; codes issued, verified and
    /// failed by purpose; email deliveries; outbox depth and oldest pending age; password-hash
    /// queue depth and wait time; active sessions; per-IP quota entries. Served here in
    /// development only, while `CODEWARD_METRICS_LISTEN` names no listener of their own; in
    /// production only on that listener, never on the public one.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> Result<MetricsResponse, InternalError> {
        if !state.config.metrics_on_main_listener() {
            return Ok(MetricsResponse::NotFound(ProblemJson(Problem::new(
                StatusCode::NOT_FOUND,
                ProblemCode::NotFound,
                "Metrics are not served on this listener.".to_owned(),
            ))));
        }
        Ok(MetricsResponse::Ok(PlainText(
            crate::app::ops::metrics(&state).await?,
        )))
    }
}
