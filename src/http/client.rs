//! Who is calling: the client IP (the socket peer, or the first untrusted hop of
//! `X-Forwarded-For` when the peer is a trusted proxy) and the user agent.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;
use poem::web::RemoteAddr;

use crate::domain::Requester;

const MAX_USER_AGENT_CHARS: usize = 512;

pub fn requester(request: &Request, trusted_proxies: &[IpNet]) -> Requester {
    let user_agent = request.header("user-agent").map(|agent| {
        agent
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT_CHARS)
            .collect()
    });
    let ip = client_ip(
        request.remote_addr(),
        request.header("x-forwarded-for"),
        trusted_proxies,
    );
    Requester::new(ip, user_agent)
}

/// Walks `X-Forwarded-For` from the right, past trusted proxies only: the first address not
/// in the trusted list is the client. A header from an untrusted peer is ignored, since anyone
/// can write one.
fn client_ip(peer: &RemoteAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.as_socket_addr().map(|addr| addr.ip().to_canonical())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> RemoteAddr {
        RemoteAddr(poem::Addr::SocketAddr(
            format!("{ip}:4000").parse().unwrap(),
        ))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let cases = [
            ("203.0.113.9", None, "203.0.113.9", "direct client"),
            (
                "203.0.113.9",
                Some("198.51.100.1"),
                "203.0.113.9",
                "untrusted peer's header ignored",
            ),
            (
                "10.0.0.2",
                Some("198.51.100.1"),
                "198.51.100.1",
                "trusted proxy",
            ),
            (
                "10.0.0.2",
                Some("6.6.6.6, 198.51.100.1, 10.0.0.3"),
                "198.51.100.1",
                "first untrusted from the right",
            ),
            (
                "10.0.0.2",
                Some("garbage"),
                "10.0.0.2",
                "unparseable hop stops the walk",
            ),
            ("10.0.0.2", None, "10.0.0.2", "proxy without header"),
        ];
        for (from, header, expected, why) in cases {
            let ip = client_ip(&peer(from), header, &trusted).unwrap();
            assert_eq!(ip.to_string(), expected, "{why}");
        }
    }
}
