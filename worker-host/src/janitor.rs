//! Removing what a previous run of this node left behind: after a crash (SIGKILL, power
//! loss) containers keep running and loop mounts stay mounted. Everything this node
//! creates carries its node id (container label, directory `{data_dir}/n/{node}`), so a
//! restarted worker-host can find and remove all of it before it starts.

use crate::config::EngineConfig;
use crate::container::ContainerRuntime;
use crate::session_disk;

/// Remove this node's containers, unmount its disks, free their loop devices and delete
/// its directory. Best effort: failures are logged and the sweep continues.
pub async fn remove_leftovers(runtime: &ContainerRuntime, config: &EngineConfig) {
    match runtime.node_containers().await {
        Ok(ids) => {
            for id in ids {
                if let Err(e) = runtime.remove(&id).await {
                    tracing::warn!(container = %id, error = %e, "could not remove leftover container");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list leftover containers"),
    }
    let root = config.node_dir();
    match session_disk::mounts_under(&root).await {
        Ok(mounts) => {
            for mount in mounts {
                if let Err(e) = session_disk::unmount(&mount).await {
                    tracing::warn!(mount = %mount.display(), error = %e, "could not unmount leftover disk");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read mount table"),
    }
    match session_disk::loop_devices_under(&root).await {
        Ok(devices) => {
            for device in devices {
                if let Err(e) = session_disk::detach_loop(&device).await {
                    tracing::warn!(device = %device, error = %e, "could not detach leftover loop device");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list loop devices"),
    }
    if let Err(e) = tokio::fs::remove_dir_all(&root).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %root.display(), error = %e, "could not remove node directory");
    }
}
