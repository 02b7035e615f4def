//! The egress allow-list (`TETHER_EGRESS_ALLOW`): the operator's exceptions for internal
//! services such as an object store on a private network.
//!
//! Entries are comma-separated:
//! - `host` or `*.domain` — that host name (or any name under the domain), any port;
//!   whatever it resolves to is admitted;
//! - `host:port` — the same, on that port only;
//! - `10.0.0.0/8`, `fd00::/8`, `127.0.0.1`, `[::1]` — addresses in the network, any host;
//! - `127.0.0.1:9000`, `[::1]:9000` — that address and port.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name (lowercase, no trailing dot); a leading `.` matches any subdomain.
    Host { name: String, port: Option<u16> },
    /// Resolved or literal addresses in `net`.
    Net { net: IpNet, port: Option<u16> },
}

/// A parsed allow-list. Empty by default: nothing internal is reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

/// An allow-list entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TETHER_EGRESS_ALLOW entry '{0}' is not a host, host:port, IP, IP:port or CIDR")]
pub struct AllowListError(pub String);

impl AllowList {
    /// Whether the list admits nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a host name (as written in the URL) and port are admitted as a whole.
    pub fn admits_host(&self, host: &str, port: u16) -> bool {
        let host = normalise_host(host);
        self.rules.iter().any(|rule| match rule {
            Rule::Host { name, port: p } => {
                let name_ok = match name.strip_prefix('.') {
                    Some(domain) => host.ends_with(name.as_str()) || host == domain,
                    None => host == *name,
                };
                name_ok && p.is_none_or(|p| p == port)
            }
            Rule::Net { .. } => false,
        })
    }

    /// Whether a resolved address and port are admitted.
    pub fn admits_addr(&self, addr: IpAddr, port: u16) -> bool {
        let addr = canonical(addr);
        self.rules.iter().any(|rule| match rule {
            Rule::Net { net, port: p } => net.contains(&addr) && p.is_none_or(|p| p == port),
            Rule::Host { .. } => false,
        })
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rules = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }
}

fn parse_rule(entry: &str) -> Result<Rule, AllowListError> {
    let bad = || AllowListError(entry.to_owned());
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(Rule::Net { net, port: None });
    }
    if let Ok(addr) = entry
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Rule::Net {
            net: IpNet::from(canonical(addr)),
            port: None,
        });
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Ok(Rule::Net {
            net: IpNet::from(canonical(sock.ip())),
            port: Some(sock.port()),
        });
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().map_err(|_| bad())?)),
        None => (entry, None),
    };
    let name = match name.strip_prefix("*.") {
        Some(domain) => format!(".{}", normalise_host(domain)),
        None => normalise_host(name),
    };
    let valid = name.trim_start_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !valid {
        return Err(bad());
    }
    Ok(Rule::Host { name, port })
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// IPv4-mapped IPv6 addresses compare as their IPv4 form.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_form() {
        let list: AllowList =
            "minio.internal, s3.corp:9000 ,10.0.0.0/8,127.0.0.1:9000,[::1],*.store.local"
                .parse()
                .unwrap();
        assert!(list.admits_host("MINIO.internal.", 443));
        assert!(list.admits_host("s3.corp", 9000));
        assert!(!list.admits_host("s3.corp", 9001));
        assert!(list.admits_host("a.b.store.local", 80));
        assert!(list.admits_host("store.local", 80));
        assert!(!list.admits_host("evilstore.local", 80));
        assert!(list.admits_addr(ip("10.9.8.7"), 1));
        assert!(list.admits_addr(ip("::ffff:10.9.8.7"), 1));
        assert!(list.admits_addr(ip("127.0.0.1"), 9000));
        assert!(!list.admits_addr(ip("127.0.0.1"), 9001));
        assert!(list.admits_addr(ip("::1"), 5));
        assert!(!list.admits_addr(ip("192.168.0.1"), 80));
    }

    #[test]
    fn refuses_garbage_and_accepts_empty() {
        assert!("".parse::<AllowList>().unwrap().is_empty());
        assert!("host:notaport".parse::<AllowList>().is_err());
        assert!("a b".parse::<AllowList>().is_err());
        assert!("10.0.0.0/33".parse::<AllowList>().is_err());
    }
}
