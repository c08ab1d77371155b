//! Failures nobody expected, and the framework's own refusals, turned into problem+json: a 500
//! says nothing about its cause, which goes to the log.

use std::any::Any;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::Type;

use poem_openapi::error::{AuthorizationError, ParseParamError, ParsePathError};

use crate::http::problem::parameters;
use crate::http::problem::shared::InternalAnswer;
use crate::http::problem::{FieldError, Problem, ProblemCode, ProblemJson, UNAUTHORIZED_DETAIL};
use crate::infra::telemetry::each_cause_once;

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
        tracing::error!(error = %each_cause_once(self), "request failed");
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

/// Turns any error that reached the outside of the app into a problem+json response.
pub async fn error_to_problem(error: poem::Error) -> Response {
    if error.is_from_response() || error.is::<InternalError>() {
        return error.into_response();
    }
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(error = %each_cause_once(&error), %status, "request failed");
        let mut problem = Problem::internal();
        problem.status = status.as_u16();
        return ProblemJson(problem).into_response();
    }
    ProblemJson(framework_refusal(&error)).into_response()
}

/// The problem for a request the framework refused before any handler ran. poem-openapi's
/// own messages name its internal types (`failed to parse "string_uuid"`), so each is said
/// again in the client's terms: the parameter as the client wrote it, and what it must be.
fn framework_refusal(error: &poem::Error) -> Problem {
    let status = error.status();
    let reported = match (
        error.downcast_ref::<ParseParamError>(),
        error.downcast_ref::<ParsePathError>(),
    ) {
        (Some(query), _) => Some(query.name),
        (None, Some(path)) => Some(path.name),
        (None, None) => None,
    };
    if let Some(reported) = reported {
        let (name, message) = parameters::refused(reported);
        let field = FieldError {
            field: name,
            code: "invalid_value".to_owned(),
            message: message.clone(),
        };
        return Problem::invalid_request(message, vec![field]);
    }
    if error.is::<AuthorizationError>() {
        // No bearer credential at all: the `Bearer` challenge without an error code.
        return Problem::unauthorized();
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (ProblemCode::NotFound, "No such path."),
        StatusCode::METHOD_NOT_ALLOWED => (
            ProblemCode::MethodNotAllowed,
            "This path does not accept this HTTP method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (ProblemCode::PayloadTooLarge, ""),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ProblemCode::UnsupportedMediaType,
            "The request body is not of a media type this operation takes.",
        ),
        StatusCode::UNAUTHORIZED => (ProblemCode::Unauthorized, UNAUTHORIZED_DETAIL),
        StatusCode::UNPROCESSABLE_ENTITY => (ProblemCode::ValidationFailed, ""),
        StatusCode::TOO_MANY_REQUESTS => (ProblemCode::RateLimited, ""),
        _ => (ProblemCode::InvalidRequest, ""),
    };
    // The remaining messages are codeward's own (the body limit, repeated members): they
    // describe the request's shape, never a value from it.
    let detail = if detail.is_empty() {
        error.to_string()
    } else {
        detail.to_owned()
    };
    Problem::new(status, code, detail)
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
