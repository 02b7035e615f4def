//! Outbound requests that cannot be aimed at the inside: the SSRF guard shared by file
//! import/export and webhook delivery.
//!
//! - [`address`]: which IP addresses are public (v4, v6, mapped and embedded forms).
//! - [`allow`]: the operator's allow-list (`TETHER_EGRESS_ALLOW`).
//! - [`resolve`]: name resolution (system, or fixed answers for tests).
//! - [`policy`]: the check a URL passes, yielding the exact addresses to connect to.
//! - [`client`]: HTTP pinned to checked addresses, redirects re-checked hop by hop.
//! - [`error`]: refusals and failures.

pub mod address;
pub mod allow;
pub mod client;
pub mod error;
pub mod policy;
pub mod resolve;

pub use address::{AddressClass, classify};
pub use allow::{AllowList, AllowListError};
pub use client::{Egress, EgressConfig, MAX_REDIRECTS};
pub use error::EgressError;
pub use policy::CheckedTarget;
pub use reqwest;
pub use resolve::{Resolve, StaticResolver, SystemResolver};
pub use url::Url;
