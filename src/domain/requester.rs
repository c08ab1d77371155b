//! Who made a request: its client IP and user agent, as the HTTP layer resolved them.

/// Where a request came from, kept with codes, sessions and audit events.
#[derive(Clone, Debug, Default)]
pub struct Requester {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
