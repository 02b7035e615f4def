//! Which callback URLs may be called: the SSRF guard for webhooks.
//!
//! [`check`] is the one entry point: it parses nothing itself, takes the URL, resolves its
//! host, and refuses if any address is loopback, private, link-local, CGNAT, metadata or
//! otherwise not public (IPv4 and IPv6, including IPv4-mapped, -compatible, NAT64 and 6to4
//! forms) unless the operator's allow-list (`TETHER_EGRESS_ALLOW`) admits it. It returns
//! the exact addresses that passed, and the sender connects only to those, so a name that
//! resolves differently a moment later (DNS rebinding) cannot redirect the request.
//!
//! This is deliberately small; the shared `tether-egress` crate (file transfers) covers
//! the same ground and can replace this module behind the same `check` function.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use url::{Host, Url};

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("only http and https URLs can be called, not {0}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry credentials (user:password@)")]
    Credentials,
    #[error("{host} could not be resolved: {detail}")]
    Resolve { host: String, detail: String },
    #[error(
        "{host} resolves to {addr}, a {class} address; add it to TETHER_EGRESS_ALLOW to allow it"
    )]
    Denied {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
}

impl EgressError {
    /// Whether trying again later could succeed (a name that does not resolve now may).
    pub fn is_transient(&self) -> bool {
        matches!(self, EgressError::Resolve { .. })
    }
}

/// A URL that passed the check, with the only addresses a connection may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTarget {
    pub url: Url,
    /// The host name as written (`None` for IP literals).
    pub domain: Option<String>,
    pub addrs: Vec<SocketAddr>,
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name, any or one port: admits the name whatever it resolves to.
    Host { name: String, port: Option<u16> },
    /// A network (an address is a /32 or /128), any or one port.
    Net {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

/// The operator's allow-list: comma-separated host names, `host:port`, IP addresses,
/// `ip:port` (`[v6]:port`) and CIDRs. Empty by default: only public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Rule>);

/// An allow-list entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TETHER_EGRESS_ALLOW entry {0:?}: expected a host, host:port, IP, ip:port or CIDR")]
pub struct AllowListError(pub String);

impl FromStr for AllowList {
    type Err = AllowListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| parse_rule(e).ok_or_else(|| AllowListError(e.to_owned())))
            .collect::<Result<_, _>>()
            .map(AllowList)
    }
}

fn parse_rule(entry: &str) -> Option<Rule> {
    let net = |addr: IpAddr, prefix: u8, port| Rule::Net { addr, prefix, port };
    let full = |addr: &IpAddr| if addr.is_ipv4() { 32 } else { 128 };
    if let Some((addr, prefix)) = entry.split_once('/') {
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        return (prefix <= full(&addr)).then(|| net(addr, prefix, None));
    }
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(net(addr, full(&addr), None));
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(net(sock.ip(), full(&sock.ip()), Some(sock.port())));
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse().ok()?)),
        None => (entry, None),
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| Rule::Host {
        name: name.trim_end_matches('.').to_ascii_lowercase(),
        port,
    })
}

impl AllowList {
    fn admits_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|rule| match rule {
            Rule::Host { name, port: p } => *name == host && p.is_none_or(|p| p == port),
            Rule::Net { .. } => false,
        })
    }

    fn admits_addr(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|rule| match rule {
            Rule::Net {
                addr,
                prefix,
                port: p,
            } => in_net(ip, canonical(*addr), *prefix) && p.is_none_or(|p| p == port),
            Rule::Host { .. } => false,
        })
    }
}

/// Check `url` for a webhook call and resolve it to the addresses a request may use.
pub async fn check(url: &Url, allow: &AllowList) -> Result<CheckedTarget, EgressError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(EgressError::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::Credentials);
    }
    let port = url.port_or_known_default().ok_or(EgressError::NoHost)?;
    let (domain, ips) = match url.host() {
        None => return Err(EgressError::NoHost),
        Some(Host::Ipv4(v4)) => (None, vec![IpAddr::V4(v4)]),
        Some(Host::Ipv6(v6)) => (None, vec![IpAddr::V6(v6)]),
        Some(Host::Domain(name)) => (Some(name.to_owned()), resolve(name, port).await?),
    };
    let shown = url.host_str().unwrap_or_default().to_owned();
    if !allow.admits_host(&shown, port) {
        // Any internal answer refuses the whole name: a name that mixes public and
        // internal answers is a rebinding attempt.
        for ip in &ips {
            if let Some(class) = internal_class(*ip)
                && !allow.admits_addr(*ip, port)
            {
                return Err(EgressError::Denied {
                    host: shown,
                    addr: *ip,
                    class,
                });
            }
        }
    }
    Ok(CheckedTarget {
        url: url.clone(),
        domain,
        addrs: ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

async fn resolve(name: &str, port: u16) -> Result<Vec<IpAddr>, EgressError> {
    let failed = |detail: String| EgressError::Resolve {
        host: name.to_owned(),
        detail,
    };
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(failed("no addresses".into()));
    }
    Ok(addrs)
}

/// `None` for a public address; otherwise what kind of non-public address it is.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => class_v6(v6),
    }
}

/// IPv6 forms that reach an IPv4 address, as that address: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return IpAddr::V4(mapped);
    }
    if s[..6] == [0; 6] && !(v6.is_loopback() || v6.is_unspecified()) {
        return v4(s[6], s[7]);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return v4(s[1], s[2]);
    }
    ip
}

fn class_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const TABLE: &[([u8; 4], u8, &str)] = &[
        ([169, 254, 169, 254], 32, "cloud metadata"),
        ([0, 0, 0, 0], 8, "this-network"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "reserved"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(*net)), *prefix))
        .map(|(_, _, class)| *class)
}

fn class_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    let within =
        |net: [u16; 8], prefix: u8| in_net(IpAddr::V6(ip), IpAddr::V6(Ipv6Addr::from(net)), prefix);
    if within([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128) {
        return Some("cloud metadata");
    }
    let table: &[([u16; 8], u8, &str)] = &[
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique-local"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo"),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, "discard"),
    ];
    if let Some((_, _, class)) = table.iter().find(|(net, prefix, _)| within(*net, *prefix)) {
        return Some(class);
    }
    // Only global unicast (2000::/3) is public.
    (s[0] & 0xe000 != 0x2000).then_some("reserved")
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|rule| match rule {
                Rule::Host { name, port: None } => name.clone(),
                Rule::Host {
                    name,
                    port: Some(p),
                } => format!("{name}:{p}"),
                Rule::Net {
                    addr,
                    prefix,
                    port: None,
                } => format!("{addr}/{prefix}"),
                Rule::Net {
                    addr,
                    port: Some(p),
                    ..
                } => SocketAddr::new(*addr, *p).to_string(),
            })
            .collect();
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_internal_addresses_in_every_form() {
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.1", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "this-network"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:a00:1::", "private"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(internal_class(ip(addr)), Some(class), "{addr}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(internal_class(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn allow_list_entries() {
        let allow: AllowList = "hooks.internal, 127.0.0.1:8080, 10.0.0.0/8, [::1]:9000, fd00::/8"
            .parse()
            .unwrap();
        assert!(allow.admits_host("hooks.internal", 443));
        assert!(allow.admits_host("HOOKS.internal.", 80));
        assert!(!allow.admits_host("other.internal", 80));
        assert!(allow.admits_addr(ip("127.0.0.1"), 8080));
        assert!(!allow.admits_addr(ip("127.0.0.1"), 8081));
        assert!(allow.admits_addr(ip("::ffff:127.0.0.1"), 8080));
        assert!(allow.admits_addr(ip("10.200.0.1"), 1));
        assert!(allow.admits_addr(ip("::1"), 9000));
        assert!(allow.admits_addr(ip("fd00::5"), 1));
        assert_eq!(
            allow.to_string(),
            "hooks.internal,127.0.0.1:8080,10.0.0.0/8,[::1]:9000,fd00::/8"
        );
        for bad in ["http://x", "10.0.0.0/33", "host:port", "a b"] {
            assert!(bad.parse::<AllowList>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<AllowList>().unwrap(), AllowList::default());
    }

    #[tokio::test]
    async fn check_refuses_internal_targets_unless_allowed() {
        let none = AllowList::default();
        let url = |s: &str| Url::parse(s).unwrap();
        for target in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:9/",
            "http://10.0.0.1/",
        ] {
            let e = check(&url(target), &none).await.unwrap_err();
            assert!(matches!(e, EgressError::Denied { .. }), "{target}: {e}");
        }
        assert!(matches!(
            check(&url("ftp://example.com/"), &none).await,
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            check(&url("http://u:p@example.com/"), &none).await,
            Err(EgressError::Credentials)
        ));
        let allow: AllowList = "127.0.0.1:9, localhost".parse().unwrap();
        let ok = check(&url("http://127.0.0.1:9/x"), &allow).await.unwrap();
        assert_eq!(ok.addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(check(&url("http://127.0.0.1:10/x"), &allow).await.is_err());
        let named = check(&url("http://localhost:9/"), &allow).await.unwrap();
        assert_eq!(named.domain.as_deref(), Some("localhost"));
        assert!(named.addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
