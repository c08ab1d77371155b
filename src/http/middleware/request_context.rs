//! Request ids, access log lines, `Cache-Control` and the `Allow` header of a 405.

use std::sync::LazyLock;
use std::time::Instant;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives every request an id (the client's `X-Request-Id` when it is sane, else a new UUID),
/// runs it inside a span carrying that id, logs its outcome, echoes the id in the response and
/// marks the response `Cache-Control: no-store` unless it says otherwise.
pub struct RequestContext;

impl<E: Endpoint> Middleware<E> for RequestContext {
    type Output = RequestContextEndpoint<E>;

    fn transform(&self, next: E) -> Self::Output {
        RequestContextEndpoint { next }
    }
}

pub struct RequestContextEndpoint<E> {
    next: E,
}

/// A client id is echoed only if it is short printable ASCII, so it cannot forge log lines.
fn client_request_id(request: &Request) -> Option<String> {
    let id = request.header(REQUEST_ID_HEADER)?;
    let sane = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| id.to_owned())
}

impl<E: Endpoint> Endpoint for RequestContextEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        let request_id =
            client_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // The path only: a query string is never logged.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %request.method(),
            path = %request.uri().path(),
        );
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let result = self.next.call(request).instrument(span.clone()).await;
        let mut response = match result {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        let status = response.status();
        span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request finished"
            );
        });
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        // RFC 9110: a 405 says which methods the path does accept.
        if status == StatusCode::METHOD_NOT_ALLOWED
            && !headers.contains_key(header::ALLOW)
            && let Some(allowed) = allowed_methods(&path)
            && let Ok(value) = HeaderValue::from_str(&allowed)
        {
            headers.insert(header::ALLOW, value);
        }
        Ok(response)
    }
}

/// The methods the spec declares for each path template, split into segments.
static ALLOWED: LazyLock<Vec<(Vec<String>, Vec<String>)>> = LazyLock::new(|| {
    let spec: serde_json::Value =
        serde_json::from_str(&crate::http::spec_json()).unwrap_or_default();
    let mut paths = Vec::new();
    for (path, operations) in spec["paths"].as_object().into_iter().flatten() {
        let segments = path.split('/').map(str::to_owned).collect();
        let mut methods: Vec<String> = operations
            .as_object()
            .into_iter()
            .flatten()
            .map(|(method, _)| method.to_ascii_uppercase())
            .collect();
        // poem answers HEAD wherever it answers GET.
        if methods.iter().any(|m| m == "GET") {
            methods.push("HEAD".to_owned());
        }
        paths.push((segments, methods));
    }
    paths
});

/// `GET, HEAD` for a path of the API, `None` for a path it does not have.
fn allowed_methods(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    ALLOWED
        .iter()
        .find(|(pattern, _)| {
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('{') || p == s)
        })
        .map(|(_, methods)| methods.join(", "))
}
