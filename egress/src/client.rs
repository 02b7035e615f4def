//! Outbound HTTP that can only reach checked addresses: each hop is checked, then sent by a
//! client pinned to exactly the addresses the check approved, with proxies and automatic
//! redirects off. Redirects are followed by hand (GET only), each hop checked again.

use crate::allow::AllowList;
use crate::error::EgressError;
use crate::policy::{CheckedTarget, check};
use crate::resolve::{Resolve, SystemResolver};
use reqwest::header::LOCATION;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Most redirects a download follows.
pub const MAX_REDIRECTS: usize = 5;

/// Settings of outbound requests.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    pub allow: AllowList,
    /// Connection set-up limit.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (not the whole transfer).
    pub read_timeout: Duration,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow: AllowList::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl EgressConfig {
    /// Defaults with the allow-list from `TETHER_EGRESS_ALLOW` (empty if unset).
    pub fn from_env() -> Result<Self, crate::allow::AllowListError> {
        let allow = std::env::var("TETHER_EGRESS_ALLOW")
            .unwrap_or_default()
            .parse()?;
        Ok(Self {
            allow,
            ..Self::default()
        })
    }
}

/// The node's outbound HTTP. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EgressConfig,
    resolver: Arc<dyn Resolve>,
}

impl Egress {
    /// Outbound HTTP with the system resolver.
    pub fn new(config: EgressConfig) -> Self {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// Outbound HTTP resolving names with `resolver` (tests).
    pub fn with_resolver(config: EgressConfig, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            inner: Arc::new(Inner { config, resolver }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &EgressConfig {
        &self.inner.config
    }

    /// Check a URL without sending anything.
    pub async fn check(&self, url: &Url) -> Result<CheckedTarget, EgressError> {
        check(url, &self.inner.config.allow, self.inner.resolver.as_ref()).await
    }

    /// A client that connects only to `target`'s checked addresses and never follows
    /// redirects or proxies.
    pub fn pinned_client(&self, target: &CheckedTarget) -> Result<reqwest::Client, EgressError> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.inner.config.connect_timeout)
            .read_timeout(self.inner.config.read_timeout)
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = &target.domain {
            builder = builder.resolve_to_addrs(domain, &target.addrs);
        }
        builder
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))
    }

    /// Send one request (no redirects followed): check `url`, then let `build` make the
    /// request on a client pinned to the checked addresses.
    pub async fn send<F>(&self, url: Url, build: F) -> Result<reqwest::Response, EgressError>
    where
        F: FnOnce(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    {
        let target = self.check(&url).await?;
        let client = self.pinned_client(&target)?;
        Ok(build(&client, target.url).send().await?)
    }

    /// GET `url`, following up to [`MAX_REDIRECTS`] redirects, each hop checked.
    pub async fn get(&self, url: Url) -> Result<reqwest::Response, EgressError> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(url.clone(), |c, u| c.get(u)).await?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(EgressError::BadRedirect)?;
            url = url.join(location).map_err(|_| EgressError::BadRedirect)?;
            tracing::debug!(
                host = url.host_str().unwrap_or_default(),
                "following redirect"
            );
        }
        Err(EgressError::TooManyRedirects(MAX_REDIRECTS))
    }
}
