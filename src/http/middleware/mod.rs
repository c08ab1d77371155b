//! Middleware around every request (request ids and access logs, metrics, the body size limit,
//! unique JSON member names), and the `transform`s of single operations: the equal-time grid and the email worker's wake-up.

mod body_limit;
mod equal_time;
mod request_context;
mod request_metrics;
mod unique_members;
mod wake_outbox;

pub use body_limit::BodyLimit;
pub use equal_time::{EqualTime, equal_time};
pub use request_context::{REQUEST_ID_HEADER, RequestContext};
pub use request_metrics::RequestMetrics;
pub use unique_members::UniqueJsonMembers;
pub use wake_outbox::{WakeOutbox, wake_outbox};
