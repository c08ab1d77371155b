//! The client network: what a per-client limit counts, as opposed to the exact address an
//! audit row keeps.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The network one client controls: an IPv4 address, or the /64 of an IPv6 address. An
/// ordinary IPv6 host is given a whole /64 (RFC 4291's interface identifiers; SLAAC and
/// privacy addresses pick any of its 2^64 addresses), so keying a limit on the full IPv6
/// address would give one host a fresh quota per address. An IPv4-mapped IPv6 address
/// (`::ffff:203.0.113.7`) is the IPv4 client it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientNetwork {
    V4(Ipv4Addr),
    /// The first 64 bits of the address; the rest are zero.
    V6Prefix64(Ipv6Addr),
}

impl From<IpAddr> for ClientNetwork {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                Self::V6Prefix64(Ipv6Addr::from(prefix))
            }
        }
    }
}

impl fmt::Display for ClientNetwork {
    /// `203.0.113.7` or `2001:db8:1:2::/64`: at most 24 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => write!(f, "{v4}"),
            Self::V6Prefix64(prefix) => write!(f, "{prefix}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(ip: &str) -> String {
        ClientNetwork::from(ip.parse::<IpAddr>().unwrap()).to_string()
    }

    #[test]
    fn ipv4_is_its_own_network_and_ipv6_counts_by_its_64() {
        let cases = [
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::1", "::/64"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "ffff:ffff:ffff:ffff::/64",
            ),
        ];
        for (ip, expected) in cases {
            assert_eq!(network(ip), expected, "{ip}");
        }
        assert_eq!(
            ClientNetwork::from("2001:db8:1:2::1".parse::<IpAddr>().unwrap()),
            ClientNetwork::from("2001:db8:1:2:abcd::9".parse::<IpAddr>().unwrap()),
        );
    }
}
