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

/// `error` and its causes on one line, `error: cause: cause`, each message once: sea-orm and
/// sqlx (among others) repeat their source's message in their own.
pub fn each_cause_once(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !line.contains(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
        cause = current.source();
    }
    line
}
