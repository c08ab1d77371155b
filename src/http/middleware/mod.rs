//! Middleware around every request: request ids and access logs, the body size limit; and the
//! equal-time grid of the operations that must not reveal whether an account exists.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::headers::HeaderMapExt;
use poem::{Body, Endpoint, Error, IntoResponse, Middleware, Request, Response, Result};
use rand::Rng;
use tracing::Instrument;

use crate::http::AppState;

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

/// Refuses bodies over `max_bytes` with 413 before any handler work: a declared
/// `Content-Length` is refused at once, and a chunked body is read no further than the limit.
pub struct BodyLimit {
    pub max_bytes: usize,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, next: E) -> Self::Output {
        BodyLimitEndpoint {
            next,
            max_bytes: self.max_bytes,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    next: E,
    max_bytes: usize,
}

impl<E: Endpoint> BodyLimitEndpoint<E> {
    fn too_large(&self) -> Error {
        Error::from_string(
            format!("The request body is larger than {} bytes.", self.max_bytes),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
    }
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let declared = request
            .headers()
            .typed_get::<poem::web::headers::ContentLength>()
            .map(|length| length.0);
        if declared.is_some_and(|length| length > self.max_bytes as u64) {
            return Err(self.too_large());
        }
        let body = request
            .take_body()
            .into_bytes_limit(self.max_bytes)
            .await
            .map_err(|error| match error {
                poem::error::ReadBodyError::PayloadTooLarge => self.too_large(),
                other => Error::from(other),
            })?;
        request.set_body(Body::from(body));
        self.next
            .call(request)
            .await
            .map(IntoResponse::into_response)
    }
}

/// The `transform` of every operation whose answer must not reveal whether an account exists.
/// They run the same statements for known and unknown addresses, yet not on equally warm data:
/// a real account's rows are colder in the CPU and database caches than the decoys', and a
/// pending account's resend revokes the code it had. Tens to hundreds of microseconds, which a
/// few hundred samples can pick up. So the answer waits for the next multiple of
/// `CODEWARD_EQUAL_TIME_STEP_MS` since the operation began, on `crate::timer`: below the
/// step, how long the work took does not show.
///
/// After a success (a code request's 202, whichever the path), it wakes the email worker at a
/// random moment within `WAKE_WITHIN`. The worker's work on a real email must land on no
/// request in particular: woken during the wait, it kept the machine busy and woke the waiting
/// request sooner than an idle machine did; woken right as the answer left, it slowed that
/// answer down (by 0.05–0.15 ms either way on the development machine).
pub fn equal_time<E: Endpoint<Output = Response>>(next: E) -> EqualTime<E> {
    EqualTime { next }
}

/// The email worker starts on an email at a random moment this long after the answer.
const WAKE_WITHIN: Duration = Duration::from_millis(100);

pub struct EqualTime<E> {
    next: E,
}

impl<E: Endpoint<Output = Response>> Endpoint for EqualTime<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let state = request.data::<AppState>().cloned();
        let step = state.as_ref().map_or(Duration::ZERO, |state| {
            Duration::from_millis(state.config.equal_time_step_ms)
        });
        let result = self.next.call(request).await;
        if let Some(state) = &state {
            // Not tokio's timer: see `timer` for why its wake-up time gives the work away.
            let deadline = started + on_grid(started.elapsed(), step);
            state.timer.sleep_until(deadline).await;
        }
        let succeeded = result.as_ref().is_ok_and(|r| r.status().is_success());
        if let Some(state) = state.filter(|_| succeeded) {
            let delay = rand::rng().random_range(Duration::ZERO..WAKE_WITHIN);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                state.outbox.wake();
            });
        }
        result
    }
}

/// `elapsed` rounded up to a whole number of `step`s, at least one; `elapsed` itself when the
/// step is zero.
fn on_grid(elapsed: Duration, step: Duration) -> Duration {
    if step.is_zero() {
        return elapsed;
    }
    let steps = elapsed.as_nanos().div_ceil(step.as_nanos()).max(1);
    step.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_land_on_the_next_step() {
        let ms = Duration::from_millis;
        let step = ms(10);
        assert_eq!(on_grid(Duration::ZERO, step), ms(10));
        assert_eq!(on_grid(Duration::from_micros(830), step), ms(10));
        assert_eq!(on_grid(ms(10), step), ms(10));
        assert_eq!(on_grid(Duration::from_micros(10_001), step), ms(20));
        assert_eq!(on_grid(ms(57), step), ms(60));
        assert_eq!(on_grid(ms(57), Duration::ZERO), ms(57));
    }
}
