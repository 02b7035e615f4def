//! The check every outbound URL passes: scheme, then the addresses it resolves to, against
//! the address classes and the allow-list. A pass yields the exact addresses to connect to.

use crate::address::{AddressClass, classify};
use crate::allow::AllowList;
use crate::error::EgressError;
use crate::resolve::Resolve;
use std::net::{IpAddr, SocketAddr};
use url::{Host, Url};

/// A URL that passed the check, with the only addresses a connection may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTarget {
    pub url: Url,
    /// The host name as written in the URL (`None` for IP literals).
    pub domain: Option<String>,
    /// Where to connect: every address the name resolved to, all of them checked.
    pub addrs: Vec<SocketAddr>,
}

/// Check `url` and resolve it to addresses a request may connect to.
pub async fn check(
    url: &Url,
    allow: &AllowList,
    resolver: &dyn Resolve,
) -> Result<CheckedTarget, EgressError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(EgressError::Scheme(other.to_owned())),
    }
    let port = url.port_or_known_default().ok_or(EgressError::NoHost)?;
    let (domain, addrs): (Option<String>, Vec<IpAddr>) = match url.host() {
        None => return Err(EgressError::NoHost),
        Some(Host::Ipv4(v4)) => (None, vec![IpAddr::V4(v4)]),
        Some(Host::Ipv6(v6)) => (None, vec![IpAddr::V6(v6)]),
        Some(Host::Domain(name)) => {
            let addrs = resolver
                .resolve(name, port)
                .await
                .map_err(|e| EgressError::Resolve {
                    host: name.to_owned(),
                    detail: e.to_string(),
                })?;
            (Some(name.to_owned()), addrs)
        }
    };
    let shown = domain
        .clone()
        .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
    if addrs.is_empty() {
        return Err(EgressError::Resolve {
            host: shown,
            detail: "no addresses".into(),
        });
    }
    let host_admitted = allow.admits_host(url.host_str().unwrap_or_default(), port);
    if !host_admitted {
        // Refuse if any answer is internal: a name that mixes public and internal answers
        // is a rebinding attempt, not a misconfiguration to work around.
        for addr in &addrs {
            if let Some(class) = classify(*addr)
                && !allow.admits_addr(*addr, port)
            {
                return Err(EgressError::Denied {
                    host: shown,
                    addr: *addr,
                    class,
                });
            }
        }
    }
    Ok(CheckedTarget {
        url: url.clone(),
        domain,
        addrs: addrs
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

/// Whether a refusal names an address class (for callers that word errors themselves).
pub fn denied_class(error: &EgressError) -> Option<AddressClass> {
    match error {
        EgressError::Denied { class, .. } => Some(*class),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::StaticResolver;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn resolver() -> StaticResolver {
        StaticResolver::default()
            .with("public.test", &["93.184.216.34".parse().unwrap()])
            .with("internal.test", &["10.1.2.3".parse().unwrap()])
            .with(
                "mixed.test",
                &[
                    "93.184.216.34".parse().unwrap(),
                    "127.0.0.1".parse().unwrap(),
                ],
            )
    }

    async fn run(u: &str, allow: &str) -> Result<CheckedTarget, EgressError> {
        check(&url(u), &allow.parse().unwrap(), &resolver()).await
    }

    #[tokio::test]
    async fn internal_targets_are_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "https://internal.test/a.csv",
            "https://mixed.test/a.csv",
        ] {
            let err = run(u, "").await.unwrap_err();
            assert!(matches!(err, EgressError::Denied { .. }), "{u}: {err}");
        }
        let err = run("http://169.254.169.254/", "").await.unwrap_err();
        assert_eq!(denied_class(&err), Some(AddressClass::Metadata));
    }

    #[tokio::test]
    async fn public_and_allow_listed_targets_pass_with_their_addresses() {
        let t = run("https://public.test/x", "").await.unwrap();
        assert_eq!(t.addrs, vec!["93.184.216.34:443".parse().unwrap()]);
        assert!(
            run("https://internal.test/x", "internal.test")
                .await
                .is_ok()
        );
        assert!(run("https://internal.test/x", "10.0.0.0/8").await.is_ok());
        assert!(
            run("https://internal.test/x", "internal.test:8443")
                .await
                .is_err()
        );
        assert!(
            run("http://127.0.0.1:9000/b", "127.0.0.1:9000")
                .await
                .is_ok()
        );
        assert!(
            run("http://127.0.0.1:9001/b", "127.0.0.1:9000")
                .await
                .is_err()
        );
        assert!(run("http://[::1]:9000/b", "[::1]").await.is_ok());
    }

    #[tokio::test]
    async fn other_schemes_and_unknown_hosts_fail() {
        assert!(matches!(
            run("file:///etc/passwd", "").await,
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            run("ftp://public.test/", "").await,
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            run("https://nowhere.test/", "").await,
            Err(EgressError::Resolve { .. })
        ));
    }
}
