//! Idle-session memory: what one idle session costs the machine. Inside the container,
//! the cgroup's memory usage as Docker reports it (raw, and less the inactive file cache
//! as `docker stats` shows it); on the host, the session disk's allocated blocks and the
//! host process's resident memory per session.

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, StatsOptionsBuilder};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

const MIB: f64 = 1024.0 * 1024.0;

/// Memory per idle session, in MiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryFigures {
    /// Containers measured.
    pub containers: usize,
    /// cgroup usage (includes page cache), mean and max.
    pub container_usage_mean_mib: f64,
    pub container_usage_max_mib: f64,
    /// Usage less inactive file cache (what `docker stats` prints), mean and max.
    pub container_working_set_mean_mib: f64,
    pub container_working_set_max_mib: f64,
    /// Blocks the session disk image really occupies (it is sparse), mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_allocated_mean_mib: Option<f64>,
    /// Growth of the measuring process's resident memory per session (kernel client,
    /// buffers): the host-side state a worker-host keeps for a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_rss_per_session_mib: Option<f64>,
    /// Working set + disk + host state: the figure compared with the 70 MB goal.
    pub per_session_total_mib: f64,
    /// What was measured.
    pub note: String,
}

/// A Docker connection that agrees on an API version the engine speaks.
pub async fn docker() -> anyhow::Result<Docker> {
    Ok(Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?)
}

/// `(usage, working set)` in bytes of one container, if Docker reports it.
pub async fn container_memory(docker: &Docker, id: &str) -> Option<(u64, u64)> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let stats = docker
        .stats(id, Some(options))
        .next()
        .await?
        .ok()?
        .memory_stats?;
    let usage = stats.usage?;
    let inactive = stats
        .stats
        .as_ref()
        .and_then(|s: &HashMap<String, u64>| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    Some((usage, usage.saturating_sub(inactive)))
}

/// Ids of running containers carrying `label` (`key` or `key=value`).
pub async fn containers_labelled(docker: &Docker, label: &str) -> anyhow::Result<Vec<String>> {
    let filters = HashMap::from([("label", vec![label.to_owned()])]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker.list_containers(Some(options)).await?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// Measure `ids` (a few at a time) and fold in the host-side figures.
pub async fn measure(
    docker: &Docker,
    ids: &[String],
    disk_images: &[&Path],
    host_rss_per_session: Option<f64>,
    note: impl Into<String>,
) -> MemoryFigures {
    let readings: Vec<(u64, u64)> = futures::stream::iter(ids)
        .map(|id| container_memory(docker, id))
        .buffer_unordered(4)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    let disk = allocated_mean(disk_images);
    summarise(&readings, disk, host_rss_per_session, note.into())
}

fn summarise(
    readings: &[(u64, u64)],
    disk: Option<f64>,
    host: Option<f64>,
    note: String,
) -> MemoryFigures {
    let n = readings.len().max(1) as f64;
    let mean = |f: fn(&(u64, u64)) -> u64| readings.iter().map(f).sum::<u64>() as f64 / n / MIB;
    let max = |f: fn(&(u64, u64)) -> u64| readings.iter().map(f).max().unwrap_or(0) as f64 / MIB;
    let working_set = mean(|r| r.1);
    let r1 = crate::stats::round3;
    MemoryFigures {
        containers: readings.len(),
        container_usage_mean_mib: r1(mean(|r| r.0)),
        container_usage_max_mib: r1(max(|r| r.0)),
        container_working_set_mean_mib: r1(working_set),
        container_working_set_max_mib: r1(max(|r| r.1)),
        disk_allocated_mean_mib: disk.map(r1),
        host_rss_per_session_mib: host.map(r1),
        per_session_total_mib: r1(working_set + disk.unwrap_or(0.0) + host.unwrap_or(0.0).max(0.0)),
        note,
    }
}

/// Mean allocated size of sparse files, in MiB.
fn allocated_mean(paths: &[&Path]) -> Option<f64> {
    use std::os::unix::fs::MetadataExt;
    let sizes: Vec<u64> = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.blocks() * 512)
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum::<u64>() as f64 / sizes.len() as f64 / MIB)
}

/// This process's resident memory in bytes (Linux `/proc/self/status`).
pub fn own_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_adds_host_side_state_to_the_working_set() {
        let m = MIB as u64;
        let f = summarise(
            &[(70 * m, 60 * m), (90 * m, 62 * m)],
            Some(1.5),
            Some(0.5),
            "x".into(),
        );
        assert_eq!(f.containers, 2);
        assert_eq!(f.container_usage_mean_mib, 80.0);
        assert_eq!(f.container_usage_max_mib, 90.0);
        assert_eq!(f.container_working_set_mean_mib, 61.0);
        assert_eq!(f.per_session_total_mib, 63.0);
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(own_rss().is_some_and(|b| b > 0));
    }
}
