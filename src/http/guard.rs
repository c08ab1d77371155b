//! What every operation does before its own work: find out who is calling and, for the
//! operations under a per-IP quota, take one request from its client network.

use poem::Request;

use crate::core::limits::{Group, Limited};
use crate::domain::Requester;
use crate::http::{AppState, client};

/// The caller of `request` (client IP and user agent).
pub fn requester(state: &AppState, request: &Request) -> Requester {
    client::requester(request, &state.config.trusted_proxies)
}

/// The caller of `request`, once its per-IP quota for `group` let it through (refused: 429
/// through `?`).
pub fn limited(state: &AppState, request: &Request, group: Group) -> Result<Requester, Limited> {
    let requester = requester(state, request);
    state.ip_limits.check(group, requester.network)?;
    Ok(requester)
}
