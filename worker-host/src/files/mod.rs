//! Files of a session disk, handled on the host: file jobs (import, export, delete),
//! direct transfer (write, read, list) and the per-run manifest.
//!
//! - [`disk_root`]: resolving beneath the disk root without following links; the only
//!   way this crate touches a session disk's files.
//! - [`staged`]: writes that land whole or not at all, within the size limit.
//! - [`listing`]: directory listings.
//! - [`manifest`]: which files a run created or changed.
//! - [`http`]: `http(s)://` downloads and presigned PUT/POST uploads via the egress guard.
//! - [`s3`]: `s3://` downloads and (multipart) uploads.
//! - [`transfer`]: the batch jobs.
//! - [`ops`]: the operations a session runs in its queue.
//! - [`error`]: failures and their stable codes.

pub mod disk_root;
pub mod error;
pub mod http;
pub mod listing;
pub mod manifest;
pub mod ops;
pub mod s3;
pub mod staged;
pub mod transfer;

pub use disk_root::DiskRoot;
pub use error::{FileError, FileFailure};
pub use manifest::ManifestLimits;
pub use ops::{BodyChunk, FileDownload, FileOp};
pub use s3::{S3Settings, S3Store, Secret};
pub use transfer::Transfers;

use tether_egress::{AllowListError, Egress, EgressConfig};

/// Settings of file handling on a node.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Largest file an import or direct upload may write (default 100 MiB).
    pub max_file_bytes: u64,
    /// Most entries a directory listing returns.
    pub max_list_entries: usize,
    /// Transfers of one job running at once.
    pub concurrency: usize,
    pub manifest: ManifestLimits,
    /// Outbound HTTP (allow-list and resolver).
    pub egress: Egress,
    /// `s3://` transfers (`None`: refused with a clear error).
    pub s3: Option<S3Settings>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 100 * 1024 * 1024,
            max_list_entries: 10_000,
            concurrency: 4,
            manifest: ManifestLimits::default(),
            egress: Egress::new(EgressConfig::default()),
            s3: None,
        }
    }
}

impl FilesConfig {
    /// Defaults, with `TETHER_EGRESS_ALLOW`, `TETHER_S3_*` and `TETHER_MAX_FILE_MIB` from
    /// the environment.
    pub fn from_env() -> Result<Self, AllowListError> {
        let mut config = Self {
            egress: Egress::new(EgressConfig::from_env()?),
            s3: S3Settings::from_env(),
            ..Self::default()
        };
        if let Some(mib) = std::env::var("TETHER_MAX_FILE_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            config.max_file_bytes = mib * 1024 * 1024;
        }
        Ok(config)
    }
}
