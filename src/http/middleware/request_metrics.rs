//! Request counts and latencies per operation, for `/metrics`.

use std::sync::Arc;

use poem::Endpoint;

use crate::infra::metrics::{Metrics, OperationIndex};

/// Counts every request by operation and status, with its latency.
pub struct RequestMetrics {
    metrics: Metrics,
    operations: Arc<OperationIndex>,
}

impl RequestMetrics {
    pub fn new(metrics: Metrics, operations: Arc<OperationIndex>) -> Self {
        Self {
            metrics,
            operations,
        }
    }
}

impl<E: Endpoint<Output = poem::Response>> poem::Middleware<E> for RequestMetrics {
    type Output = RequestMetricsEndpoint<E>;

    fn transform(&self, next: E) -> Self::Output {
        RequestMetricsEndpoint {
            next,
            metrics: self.metrics.clone(),
            operations: self.operations.clone(),
        }
    }
}

pub struct RequestMetricsEndpoint<E> {
    next: E,
    metrics: Metrics,
    operations: Arc<OperationIndex>,
}

impl<E: Endpoint<Output = poem::Response>> Endpoint for RequestMetricsEndpoint<E> {
    type Output = poem::Response;

    async fn call(&self, request: poem::Request) -> poem::Result<Self::Output> {
        let operation = self
            .operations
            .operation(request.method().as_str(), request.uri().path())
            .to_owned();
        let started = std::time::Instant::now();
        let response = self.next.call(request).await?;
        self.metrics
            .request(&operation, response.status().as_u16(), started.elapsed());
        Ok(response)
    }
}
