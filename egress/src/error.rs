//! Why an outbound request was refused or failed.

use crate::address::AddressClass;
use std::net::IpAddr;

/// An outbound request that did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Only `http` and `https` leave the node.
    #[error("scheme '{0}' is not allowed (use http or https)")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    /// The target is internal and not on the allow-list. Permanent: retrying cannot help.
    #[error(
        "{host} resolves to {addr}, a {class} address; outbound requests to it are refused (the operator can admit it with TETHER_EGRESS_ALLOW)"
    )]
    Denied {
        host: String,
        addr: IpAddr,
        class: AddressClass,
    },
    #[error("could not resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("redirect without a usable Location header")]
    BadRedirect,
    /// The HTTP client could not be built (TLS set-up); a node configuration problem.
    #[error("HTTP client set-up failed: {0}")]
    Client(String),
    /// Connecting, sending or receiving failed. The message never contains the URL's query
    /// (presigned URLs carry credentials there).
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
}

impl EgressError {
    /// Whether the policy refused the request (as opposed to the network failing it).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EgressError::Scheme(_)
                | EgressError::NoHost
                | EgressError::Denied { .. }
                | EgressError::TooManyRedirects(_)
        )
    }
}

impl From<reqwest::Error> for EgressError {
    fn from(e: reqwest::Error) -> Self {
        EgressError::Request(e.without_url())
    }
}
