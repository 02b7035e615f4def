//! Sandbox containers through the Docker Engine API (bollard).

use crate::config::EngineConfig;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
};
use std::collections::HashMap;
use std::path::Path;

/// Label carrying the owning node id; a restarted worker-host removes what its
/// predecessor left behind by this label.
pub const NODE_LABEL: &str = "org.tether.node";

/// Where the kernel's connection directory is mounted inside the sandbox.
pub const RUN_DIR: &str = "/run/tether";

/// Why a Docker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// A connected Docker client plus the settings every sandbox is created with.
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    docker: Docker,
    config: EngineConfig,
}

impl ContainerRuntime {
    /// Connect to the local engine and agree on an API version it speaks (Debian's
    /// Engine 20.10 refuses bollard's default 1.53).
    pub async fn connect(config: EngineConfig) -> Result<Self, ContainerError> {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        docker.ping().await?;
        Ok(Self { docker, config })
    }

    /// Whether the engine answers.
    pub async fn ping(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    /// Create and start a sandbox whose kernel binds its sockets in `run_dir` and whose
    /// `/sandbox` is `disk_dir`. Returns the container id.
    pub async fn start(
        &self,
        name: &str,
        run_dir: &Path,
        disk_dir: &Path,
    ) -> Result<String, ContainerError> {
        let limits = &self.config.limits;
        let memory = i64::try_from(limits.memory_mib * 1024 * 1024).unwrap_or(i64::MAX);
        let mut host = HostConfig {
            binds: Some(vec![
                format!("{}:{RUN_DIR}:rw", run_dir.display()),
                format!("{}:/sandbox:rw", disk_dir.display()),
            ]),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(limits.pids),
            ..Default::default()
        };
        if limits.hardened {
            host.network_mode = Some("none".into());
            host.cap_drop = Some(vec!["ALL".into()]);
            host.security_opt = Some(vec!["no-new-privileges".into()]);
            host.readonly_rootfs = Some(true);
            host.tmpfs = Some(HashMap::from([(
                "/tmp".to_owned(),
                format!(
                    "rw,nosuid,nodev,size={}m,uid=1000,gid=1000,mode=1700",
                    limits.tmp_mib
                ),
            )]));
        }
        let body = ContainerCreateBody {
            image: Some(self.config.image.clone()),
            user: Some("1000:1000".into()),
            working_dir: Some("/sandbox".into()),
            cmd: Some(vec![
                "python3".into(),
                "-m".into(),
                "ipykernel_launcher".into(),
                "-f".into(),
                format!("{RUN_DIR}/kernel.json"),
            ]),
            labels: Some(HashMap::from([(
                NODE_LABEL.to_owned(),
                self.config.node_id.to_string(),
            )])),
            network_disabled: Some(limits.hardened),
            host_config: Some(host),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self.docker.create_container(Some(options), body).await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.remove(&created.id).await;
            return Err(e.into());
        }
        Ok(created.id)
    }

    /// Kill and start the container again: a fresh kernel process, same disk and mounts.
    pub async fn restart(&self, id: &str) -> Result<(), ContainerError> {
        let options = RestartContainerOptionsBuilder::default().t(0).build();
        self.docker.restart_container(id, Some(options)).await?;
        Ok(())
    }

    /// Deliver SIGINT to the container's init, which forwards it to the kernel.
    pub async fn interrupt(&self, id: &str) -> Result<(), ContainerError> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGINT")
            .build();
        self.docker.kill_container(id, Some(options)).await?;
        Ok(())
    }

    /// Whether the container is running: `Some(false)` once it stopped (the kernel is
    /// tini's only child, so the container stops when the kernel dies), `None` when
    /// Docker cannot say.
    pub async fn is_running(&self, id: &str) -> Option<bool> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => Some(c.state.and_then(|s| s.running).unwrap_or(false)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Some(false),
            Err(_) => None,
        }
    }

    /// Whether the kernel was killed for exceeding the memory limit.
    pub async fn oom_killed(&self, id: &str) -> bool {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
    }

    /// Remove the container, running or not. A missing container is not an error.
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ids of every container labelled with this node, running or not.
    pub async fn node_containers(&self) -> Result<Vec<String>, ContainerError> {
        let filters = HashMap::from([(
            "label",
            vec![format!("{NODE_LABEL}={}", self.config.node_id)],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(options)).await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Resident memory of a container in bytes (cgroup usage), if the engine reports it.
    pub async fn memory_usage(&self, id: &str) -> Option<u64> {
        use bollard::query_parameters::StatsOptionsBuilder;
        use futures::StreamExt;
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
        stats.memory_stats?.usage
    }
}
