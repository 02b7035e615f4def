//! Tether's worker-host: the sandbox engine of one node.
//!
//! - [`engine`] — the public face — execute code in a user's session, release it, status.
//! - [`session`] — one session's serial executor (commands run in submission order).
//! - [`cell`] — running one cell with the timeout ladder (interrupt → restart → recycle).
//! - [`kernel`] — the persistent Jupyter connection over ZMQ IPC sockets.
//! - [`output`] — kernel messages → Tether outputs, within the output cap.
//! - [`pool`] — the warm pool of ready sandboxes under a hard cap.
//! - [`sandbox`] — one container + kernel + disk.
//! - [`container`] — Docker (bollard) with the hardened container profile.
//! - [`file_server`] — the internal HTTP endpoint direct uploads and downloads stream through.
//! - [`files`] — file jobs, direct transfer and the per-run manifest, safely beneath the disk root.
//! - [`session_disk`] — per-session loop-mounted ext4 disks (the quota).
//! - [`janitor`] — removing what a crashed predecessor left behind.
//! - [`jobs`] — the node's job loop — consume the bus, run jobs, store results.
//! - [`rejoin`] — settling what an earlier run of this node id left in registry and store.
//! - [`config`] — settings.

pub mod cell;
pub mod config;
pub mod container;
pub mod engine;
pub mod file_server;
pub mod files;
pub mod janitor;
pub mod jobs;
pub mod kernel;
pub mod output;
pub mod pool;
pub mod rejoin;
pub mod sandbox;
pub mod session;
pub mod session_disk;

pub use cell::{Cause, CellReport};
pub use config::{EngineConfig, SandboxLimits};
pub use engine::{Engine, EngineError, EngineStatus, ExecuteOptions, Pending};
pub use files::{BodyChunk, FileDownload, FileError, FileFailure, FilesConfig};
pub use jobs::{JobLoop, JobLoopConfig};
