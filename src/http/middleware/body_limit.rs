//! The request body limit, applied before any handler work.

use poem::http::StatusCode;
use poem::web::headers::HeaderMapExt;
use poem::{Body, Endpoint, Error, IntoResponse, Middleware, Request, Response, Result};

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
