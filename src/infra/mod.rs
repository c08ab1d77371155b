//! Infrastructure below the rules: the database connection and migrations, the clock, the
//! precise timer, logging and the Prometheus metrics.

pub mod clock;
pub mod db;
pub mod metrics;
pub mod telemetry;
pub mod timer;
