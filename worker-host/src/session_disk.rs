//! Per-session disks: a sparse ext4 image, loop-mounted on the host, bind-mounted into the
//! sandbox at `/sandbox`. The file system size is the quota; writes beyond it fail with
//! ENOSPC inside the sandbox and never touch the host disk.

use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Why a disk operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("disk I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The sandbox user's uid/gid; the disk root is owned by it.
pub const SANDBOX_UID: u32 = 1000;

/// A mounted session disk. Unmount and delete with [`SessionDisk::destroy`].
#[derive(Debug)]
pub struct SessionDisk {
    image: PathBuf,
    mount_point: PathBuf,
}

impl SessionDisk {
    /// Create `dir/disk.img` of `size_mib` and mount it at `dir/disk`.
    pub async fn create(dir: &Path, size_mib: u64) -> Result<Self, DiskError> {
        let image = dir.join("disk.img");
        let mount_point = dir.join("disk");
        tokio::fs::create_dir_all(&mount_point).await?;
        let file = tokio::fs::File::create(&image).await?;
        file.set_len(size_mib * 1024 * 1024).await?;
        drop(file);
        run(
            "mkfs.ext4",
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-O", "^has_journal", "-E"])
                .arg(format!("root_owner={SANDBOX_UID}:{SANDBOX_UID}"))
                .arg(&image),
        )
        .await?;
        run(
            "mount",
            Command::new("mount")
                .args(["-o", "loop,nosuid,nodev"])
                .arg(&image)
                .arg(&mount_point),
        )
        .await?;
        // mkfs leaves lost+found owned by root; the sandbox has no use for it.
        let _ = tokio::fs::remove_dir(mount_point.join("lost+found")).await;
        Ok(Self { image, mount_point })
    }

    /// Host path of the mounted file system (what is bind-mounted at `/sandbox`).
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Unmount, free the loop device and delete the image.
    pub async fn destroy(self) -> Result<(), DiskError> {
        unmount(&self.mount_point).await?;
        tokio::fs::remove_file(&self.image).await?;
        let _ = tokio::fs::remove_dir(&self.mount_point).await;
        Ok(())
    }
}

/// Unmount a loop mount (lazily if busy); `mount -o loop` set autoclear, so the loop
/// device is released with the last reference.
pub async fn unmount(mount_point: &Path) -> Result<(), DiskError> {
    let status = Command::new("umount").arg(mount_point).output().await?;
    if status.status.success() {
        return Ok(());
    }
    run(
        "umount -l",
        Command::new("umount").arg("-l").arg(mount_point),
    )
    .await
}

/// Every mount point at or below `root`, deepest first (from /proc/self/mountinfo).
pub async fn mounts_under(root: &Path) -> Result<Vec<PathBuf>, DiskError> {
    let info = tokio::fs::read_to_string("/proc/self/mountinfo").await?;
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// Loop devices whose backing file lies below `root` (from `losetup -J`... kept simple:
/// `losetup -l -n -O NAME,BACK-FILE`).
pub async fn loop_devices_under(root: &Path) -> Result<Vec<String>, DiskError> {
    let out = Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let dev = parts.next()?;
            let back = parts.next()?;
            Path::new(back).starts_with(root).then(|| dev.to_owned())
        })
        .collect())
}

/// Detach a loop device.
pub async fn detach_loop(device: &str) -> Result<(), DiskError> {
    run("losetup -d", Command::new("losetup").args(["-d", device])).await
}

fn unescape_mount_path(raw: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as octal.
    raw.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

async fn run(step: &'static str, cmd: &mut Command) -> Result<(), DiskError> {
    let out = cmd.output().await.map_err(|e| DiskError::Command {
        step,
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DiskError::Command {
            step,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
