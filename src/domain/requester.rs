//! Who made a request: its client IP and user agent, as the HTTP layer resolved them.

use std::net::IpAddr;

use super::ClientNetwork;

/// Where a request came from, kept with codes, sessions and audit events.
#[derive(Clone, Debug, Default)]
pub struct Requester {
    /// The exact client address, as codes, sessions and audit events record it.
    pub ip: Option<String>,
    /// The client's network, which per-client limits count (see `ClientNetwork`).
    pub network: Option<ClientNetwork>,
    pub user_agent: Option<String>,
}

impl Requester {
    /// A request from `ip` (none when not over TCP) with this user agent.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<String>) -> Self {
        Self {
            ip: ip.map(|ip| ip.to_string()),
            network: ip.map(ClientNetwork::from),
            user_agent,
        }
    }
}
