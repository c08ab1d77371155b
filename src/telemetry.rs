//! Structured logging with tracing: text for people, JSON for collectors.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Logs go to stderr so `codeward openapi` output stays clean.
pub fn init(config: &Config) {
    // `validate` already refused an invalid filter; fall back rather than panic if called first.
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests spawning several apps) keeps the first subscriber.
    drop(result);
}
