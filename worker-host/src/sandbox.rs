//! One sandbox: a container, its kernel connection and the session disk it mounts.

use crate::config::EngineConfig;
use crate::container::{ContainerError, ContainerRuntime, RUN_DIR};
use crate::kernel::{KernelClient, KernelEndpoints, KernelError};
use crate::session_disk::{DiskError, SANDBOX_UID, SessionDisk};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a sandbox could not be created or recovered.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("sandbox files: {0}")]
    Io(#[from] std::io::Error),
}

/// A running sandbox with a connected, ready kernel.
#[derive(Debug)]
pub struct Sandbox {
    /// Short random id naming the container and the host directory.
    pub slot: String,
    dir: PathBuf,
    pub container_id: String,
    pub kernel: KernelClient,
    disk: SessionDisk,
}

impl Sandbox {
    /// Create the disk, the connection directory and the container, and wait for the kernel.
    pub async fn create(
        runtime: &ContainerRuntime,
        config: &EngineConfig,
    ) -> Result<Self, SandboxError> {
        let slot = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let dir = config.node_dir().join("s").join(&slot);
        tokio::fs::create_dir_all(&dir).await?;
        let disk = match SessionDisk::create(&dir, config.limits.disk_mib).await {
            Ok(disk) => disk,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(e.into());
            }
        };
        match Self::boot(runtime, config, None, &dir, &slot).await {
            Ok((container_id, kernel)) => Ok(Self {
                slot,
                dir,
                container_id,
                kernel,
                disk,
            }),
            Err(e) => {
                let _ = disk.destroy().await;
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Err(e)
            }
        }
    }

    /// Start a container for `disk` (replacing `old` if given) and connect to its kernel.
    async fn boot(
        runtime: &ContainerRuntime,
        config: &EngineConfig,
        old: Option<&str>,
        dir: &Path,
        slot: &str,
    ) -> Result<(String, KernelClient), SandboxError> {
        if let Some(old) = old {
            runtime.remove(old).await?;
        }
        let run_dir = fresh_run_dir(dir).await?;
        let endpoints = KernelEndpoints::new(&run_dir, RUN_DIR);
        write_connection_file(&run_dir, &endpoints).await?;
        let name = format!(
            "tether-{}-{slot}-{}",
            config.node_id,
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let id = runtime.start(&name, &run_dir, &dir.join("disk")).await?;
        match KernelClient::connect(&endpoints, config.start_timeout).await {
            Ok(kernel) => Ok((id, kernel)),
            Err(e) => {
                let _ = runtime.remove(&id).await;
                Err(e.into())
            }
        }
    }

    /// Restart the kernel process (same container, same disk). Python state is lost.
    pub async fn restart_kernel(
        &mut self,
        runtime: &ContainerRuntime,
        config: &EngineConfig,
    ) -> Result<(), SandboxError> {
        let run_dir = self.dir.join("run");
        remove_sockets(&run_dir).await?;
        runtime.restart(&self.container_id).await?;
        let endpoints = read_endpoints(&run_dir, &self.kernel);
        self.kernel = KernelClient::connect(&endpoints, config.start_timeout).await?;
        Ok(())
    }

    /// Replace the container with a new one on the same disk. State and `/tmp` are lost;
    /// `/sandbox` files are kept.
    pub async fn recycle(
        &mut self,
        runtime: &ContainerRuntime,
        config: &EngineConfig,
    ) -> Result<(), SandboxError> {
        let (id, kernel) = Self::boot(
            runtime,
            config,
            Some(&self.container_id),
            &self.dir,
            &self.slot,
        )
        .await?;
        self.container_id = id;
        self.kernel = kernel;
        Ok(())
    }

    /// Host path of the session disk's root (`/sandbox` inside).
    pub fn disk_root(&self) -> &Path {
        self.disk.mount_point()
    }

    /// Remove the container, unmount and delete the disk and the host directory.
    pub async fn destroy(self, runtime: &ContainerRuntime) -> Result<(), SandboxError> {
        let container = runtime.remove(&self.container_id).await;
        drop(self.kernel);
        let disk = self.disk.destroy().await;
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
        container?;
        disk?;
        Ok(())
    }
}

/// An empty connection directory owned by the sandbox user.
async fn fresh_run_dir(slot_dir: &Path) -> Result<PathBuf, std::io::Error> {
    let run_dir = slot_dir.join("run");
    let _ = tokio::fs::remove_dir_all(&run_dir).await;
    tokio::fs::create_dir_all(&run_dir).await?;
    std::os::unix::fs::chown(&run_dir, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
    tokio::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).await?;
    Ok(run_dir)
}

/// The kernel's connection file, readable only by the sandbox user.
async fn write_connection_file(
    run_dir: &Path,
    endpoints: &KernelEndpoints,
) -> Result<(), std::io::Error> {
    let path = run_dir.join("kernel.json");
    let json = serde_json::to_vec_pretty(&endpoints.in_container)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tokio::fs::write(&path, json).await?;
    std::os::unix::fs::chown(&path, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).await?;
    Ok(())
}

/// Delete the kernel's socket files so that a restarted kernel's new sockets are the
/// only ones a reconnect can find.
async fn remove_sockets(run_dir: &Path) -> Result<(), std::io::Error> {
    let mut entries = tokio::fs::read_dir(run_dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_name().to_string_lossy().starts_with("k-") {
            tokio::fs::remove_file(entry.path()).await?;
        }
    }
    Ok(())
}

fn read_endpoints(run_dir: &Path, kernel: &KernelClient) -> KernelEndpoints {
    let mut endpoints = kernel.endpoints().clone();
    endpoints.host_dir = run_dir.to_path_buf();
    endpoints
}
