//! Structured logging with tracing: text for people, JSON for collectors.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Logs go to stderr so `codeward openapi` output stays clean.
pub fn init(filter: &str, format: LogFormat) {
    // `Config::validate` already refused an invalid filter; fall back rather than panic.
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests spawning several apps) keeps the first subscriber.
    drop(result);
}
