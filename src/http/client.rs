//! Who is calling: the client IP (the socket peer, or the first untrusted hop of
//! `X-Forwarded-For` when the peer is a trusted proxy) and the user agent.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use poem::Request;
use poem::web::RemoteAddr;

use crate::domain::{Requester, is_bidi_control};

const MAX_USER_AGENT_CHARS: usize = 512;

pub fn requester(request: &Request, trusted_proxies: &[IpNet]) -> Requester {
    let forwarded_for = request.headers().get_all("x-forwarded-for");
    let ip = client_ip(
        request.remote_addr(),
        forwarded_for.iter().map(|line| line.as_bytes()),
        trusted_proxies,
    );
    Requester::new(ip, request.header("user-agent").map(user_agent))
}

/// The user agent as stored and shown: without control characters, nor bidirectional-text
/// controls, which would make a session list or an email read otherwise than it is written.
fn user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}

/// Walks `X-Forwarded-For` from the right, past trusted proxies only: the first address not
/// in the trusted list is the client. A header from an untrusted peer is ignored, since anyone
/// can write one.
///
/// Every field line counts, in order, as one comma-separated list (RFC 9110 §5.3): a proxy may
/// append a line of its own rather than extend the client's, and the client's line, first,
/// must not win. A hop that is no address stops the walk at the last trusted one.
fn client_ip<'a>(
    peer: &RemoteAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.as_socket_addr().map(|addr| addr.ip().to_canonical())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops = forwarded_for
        .rev()
        .flat_map(|line| line.rsplit(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        // An empty list element means nothing (RFC 9110 §5.6.1).
        .filter(|hop| !hop.is_empty());
    let mut client = peer;
    for hop in hops {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// One hop as proxies write it: `203.0.113.9`, `203.0.113.9:1234`, `2001:db8::5`,
/// `[2001:db8::5]` or `[2001:db8::5]:4444`.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?;
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let bracketed = hop.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> RemoteAddr {
        RemoteAddr(poem::Addr::SocketAddr(
            format!("{ip}:4000").parse().unwrap(),
        ))
    }

    fn client(from: &str, lines: &[&str], trusted: &[IpNet]) -> String {
        let lines = lines.iter().map(|line| line.as_bytes());
        client_ip(&peer(from), lines, trusted).unwrap().to_string()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let cases: [(&str, &[&str], &str, &str); 6] = [
            ("203.0.113.9", &[], "203.0.113.9", "direct client"),
            (
                "203.0.113.9",
                &["198.51.100.1"],
                "203.0.113.9",
                "untrusted peer's header ignored",
            ),
            (
                "10.0.0.2",
                &["198.51.100.1"],
                "198.51.100.1",
                "trusted proxy",
            ),
            (
                "10.0.0.2",
                &["6.6.6.6, 198.51.100.1, 10.0.0.3"],
                "198.51.100.1",
                "first untrusted from the right",
            ),
            (
                "10.0.0.2",
                &["garbage"],
                "10.0.0.2",
                "unparseable hop stops the walk",
            ),
            ("10.0.0.2", &[], "10.0.0.2", "proxy without header"),
        ];
        for (from, lines, expected, why) in cases {
            assert_eq!(client(from, lines, &trusted), expected, "{why}");
        }
    }

    #[test]
    fn every_forwarded_for_line_counts_in_order_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let cases: [(&[&str], &str, &str); 6] = [
            (
                &["6.6.6.6", "198.51.100.1"],
                "198.51.100.1",
                "the proxy's own line is the last one",
            ),
            (
                &["6.6.6.6", "198.51.100.1, 10.0.0.3"],
                "198.51.100.1",
                "trusted hops of the last line are skipped",
            ),
            (
                &["6.6.6.6, 198.51.100.1", "10.0.0.3", "10.0.0.4"],
                "198.51.100.1",
                "the walk goes on into earlier lines",
            ),
            (
                &["6.6.6.6", "garbage, 10.0.0.3"],
                "10.0.0.3",
                "an unparseable hop in a later line stops the walk there",
            ),
            (
                &["6.6.6.6", "198.51.100.1,,  ,"],
                "198.51.100.1",
                "empty list elements are ignored",
            ),
            (
                &["6.6.6.6", "198.51.100.\u{e9}"],
                "10.0.0.2",
                "a line that is not ASCII stops the walk",
            ),
        ];
        for (lines, expected, why) in cases {
            assert_eq!(client("10.0.0.2", lines, &trusted), expected, "{why}");
        }
    }

    #[test]
    fn hops_with_ports_and_brackets_are_addresses() {
        let cases = [
            ("203.0.113.9", Some("203.0.113.9")),
            ("203.0.113.9:1234", Some("203.0.113.9")),
            ("2001:db8::5", Some("2001:db8::5")),
            ("[2001:db8::5]", Some("2001:db8::5")),
            ("[2001:db8::5]:4444", Some("2001:db8::5")),
            ("::ffff:203.0.113.9", Some("::ffff:203.0.113.9")),
            ("203.0.113.9:", None),
            ("203.0.113.9:99999", None),
            ("[203.0.113.9]", None),
            ("[2001:db8::5", None),
            ("2001:db8::5]:4444", None),
            ("unknown", None),
            ("_hidden", None),
            ("example.com:80", None),
        ];
        for (hop, expected) in cases {
            let parsed = parse_hop(hop.as_bytes()).map(|ip| ip.to_string());
            assert_eq!(parsed.as_deref(), expected, "{hop}");
        }
    }

    #[test]
    fn an_ipv4_mapped_hop_counts_as_its_ipv4_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];

        let found = client(
            "10.0.0.2",
            &["198.51.100.1", "[::ffff:10.0.0.3]:80"],
            &trusted,
        );

        assert_eq!(found, "198.51.100.1", "the mapped proxy address is trusted");
    }

    #[test]
    fn user_agents_lose_control_and_bidirectional_characters() {
        let cases = [
            ("Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"),
            ("App/1.0\t(tab)", "App/1.0(tab)"),
            ("App/1.0 (\u{202E}exe.gpj)", "App/1.0 (exe.gpj)"),
            (
                "\u{2066}a\u{2067}b\u{2068}c\u{2069}d\u{200E}e\u{200F}f\u{061C}g\u{202A}\u{202B}\u{202C}\u{202D}",
                "abcdefg",
            ),
        ];
        for (raw, stored) in cases {
            assert_eq!(user_agent(raw), stored, "{raw:?}");
        }
        assert_eq!(user_agent(&"x".repeat(600)).len(), MAX_USER_AGENT_CHARS);
    }
}
