//! Failures nobody expected, and the framework's own refusals, turned into problem+json: a 500
//! says nothing about its cause, which goes to the log.

use std::any::Any;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::Type;

use crate::http::problem::shared::InternalAnswer;
use crate::http::problem::{Problem, ProblemCode, ProblemJson};

/// The crate-wide type of unexpected failures: always a 500 whose body says nothing about the
/// cause, while the whole cause chain goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Core(#[from] crate::core::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::infra::metrics::RenderError> for InternalError {
    fn from(error: crate::infra::metrics::RenderError) -> Self {
        Self::Other(error.into())
    }
}

impl From<sea_orm::DbErr> for InternalError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Core(error.into())
    }
}

impl poem::error::ResponseError for InternalError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn as_response(&self) -> Response {
        tracing::error!(error = %error_chain(self), "request failed");
        ProblemJson(Problem::internal()).into_response()
    }
}

impl ApiResponse for InternalError {
    fn meta() -> MetaResponses {
        InternalAnswer::meta()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// `error: cause: cause`, for one log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns any error that reached the outside of the app into a problem+json response.
pub async fn error_to_problem(error: poem::Error) -> Response {
    if error.is_from_response() || error.is::<InternalError>() {
        return error.into_response();
    }
    let status = error.status();
    let code = match status {
        StatusCode::NOT_FOUND => ProblemCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ProblemCode::Unauthorized,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemCode::ValidationFailed,
        StatusCode::TOO_MANY_REQUESTS => ProblemCode::RateLimited,
        s if s.is_client_error() => ProblemCode::InvalidRequest,
        _ => ProblemCode::InternalError,
    };
    if status.is_server_error() {
        tracing::error!(error = %error_chain(&error), %status, "request failed");
        let mut problem = Problem::internal();
        problem.status = status.as_u16();
        return ProblemJson(problem).into_response();
    }
    // The framework's messages describe the request's shape ("missing field `email`"), never
    // a value from it, so they are safe and useful to return.
    let detail = match code {
        ProblemCode::NotFound => "No such path.".to_owned(),
        ProblemCode::MethodNotAllowed => "This path does not accept this HTTP method.".to_owned(),
        _ => error.to_string(),
    };
    ProblemJson(Problem::new(status, code, detail)).into_response()
}

/// The response to a panic inside a handler: a generic 500, the panic message only in the log.
pub fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    ProblemJson(Problem::internal()).into_response()
}
