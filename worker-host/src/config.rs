//! The engine's settings. Built by the `tether` binary from flags/env; tests build it directly.

use crate::files::FilesConfig;
use std::path::PathBuf;
use std::time::Duration;
use tether_protocol::NodeId;

/// Resource limits and hardening applied to every sandbox container.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Memory limit in MiB; swap is disabled (memory-swap = memory).
    pub memory_mib: u64,
    /// CPU quota in cores (e.g. 1.0).
    pub cpus: f64,
    /// Maximum number of processes/threads in the container.
    pub pids: i64,
    /// Size of the `/tmp` tmpfs in MiB.
    pub tmp_mib: u64,
    /// Size of each session's `/sandbox` disk in MiB (the quota).
    pub disk_mib: u64,
    /// Run with the hardened profile (no network, no capabilities, read-only root,
    /// non-root user). On by default; turning it off is for debugging only.
    pub hardened: bool,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_mib: 512,
            cpus: 1.0,
            pids: 128,
            tmp_mib: 64,
            disk_mib: 500,
            hardened: true,
        }
    }
}

/// Everything the engine needs to run.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This worker-host's id; labels containers and names mount directories.
    pub node_id: NodeId,
    /// Where session disks and kernel socket directories live (`{data_dir}/n/{node}/…`).
    pub data_dir: PathBuf,
    /// Sandbox image reference.
    pub image: String,
    /// Pre-started sandboxes kept ready for new sessions.
    pub min_idle: usize,
    /// Hard cap on sandboxes (idle + in use + starting).
    pub max_total: usize,
    pub limits: SandboxLimits,
    /// Per-execution output cap in bytes; beyond it output is dropped and flagged.
    pub output_cap: usize,
    /// Wait after an interrupt before escalating to a kernel restart.
    pub interrupt_grace: Duration,
    /// Sessions idle this long are reaped.
    pub idle_ttl: Duration,
    /// How long a new sandbox may take to become ready.
    pub start_timeout: Duration,
    /// File jobs, direct transfer and the per-run manifest.
    pub files: FilesConfig,
    /// A kernel quiet for longer than this gets a heartbeat check before its next cell,
    /// so code sent to a kernel that died while idle is not lost.
    pub idle_check_after: Duration,
    /// Sandboxes started at once; more wait their turn (a burst of starts on few cores
    /// otherwise slows every one of them down).
    pub max_concurrent_starts: usize,
}

impl EngineConfig {
    /// Defaults for `node_id` with data under `data_dir`.
    pub fn new(node_id: NodeId, data_dir: PathBuf) -> Self {
        Self {
            node_id,
            data_dir,
            image: "tether-sandbox:latest".into(),
            min_idle: 2,
            max_total: 30,
            limits: SandboxLimits::default(),
            output_cap: 1024 * 1024,
            interrupt_grace: Duration::from_millis(1500),
            idle_ttl: Duration::from_secs(3600),
            start_timeout: Duration::from_secs(30),
            files: FilesConfig::default(),
            idle_check_after: Duration::from_secs(10),
            max_concurrent_starts: 3,
        }
    }

    /// The directory holding everything this node created on the host.
    pub fn node_dir(&self) -> PathBuf {
        self.data_dir.join("n").join(self.node_id.as_str())
    }
}
