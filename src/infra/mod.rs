//! Infrastructure below the rules: the database connection and migrations, the clock, the
//! precise timer, logging, the Prometheus metrics and the heap's free pages.

pub mod clock;
pub mod db;
pub mod lookups;
pub mod memory;
pub mod metrics;
pub mod server_pool;
pub mod sql_once;
pub mod sqlite_direct;
pub mod telemetry;
pub mod timer;
pub mod writes;
