//! Host-side access to a session disk that the sandbox cannot subvert.
//!
//! The host runs as root and the sandbox controls every name on the disk, so every
//! open, create, delete and list here resolves *beneath* the disk root's file descriptor
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)` and `O_NOFOLLOW`: a symbolic link anywhere in a path, `..`, or a mount
//! crossing fails the call instead of being followed (Judge0 CVE-2024-28185/28189).
//! Files are opened `O_NONBLOCK` and checked with `fstat` before any byte is read, so a
//! FIFO never blocks and a FIFO, socket, device or hard-linked file is never read.
//! Ownership is only ever changed with `fchown` on a descriptor this module just created.

use super::error::FileError;
use crate::session_disk::SANDBOX_UID;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use tether_protocol::{EntryKind, FileName, SandboxPath, UnixMillis};

/// Resolution rules for every path below the root.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Mode of directories the host creates (the sandbox user owns them).
const DIR_MODE: u32 = 0o755;
/// Mode of files the host creates.
pub(crate) const FILE_MODE: u32 = 0o644;

/// What `stat` says about an entry, in the terms file operations care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: EntryKind,
    pub size: u64,
    pub links: u64,
    pub inode: u64,
    pub uid: u32,
    pub modified: UnixMillis,
    /// Modification time in nanoseconds (change detection).
    pub mtime_ns: i128,
    /// Status change time in nanoseconds (change detection).
    pub ctime_ns: i128,
}

impl Meta {
    #[allow(
        clippy::unnecessary_cast,
        reason = "stat field widths differ by architecture"
    )]
    pub(crate) fn of(stat: &Stat) -> Self {
        let kind = match FileType::from_raw_mode(stat.st_mode as _) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Special,
        };
        let mtime_ns = i128::from(stat.st_mtime as i64) * 1_000_000_000
            + i128::from(stat.st_mtime_nsec as u64);
        let ctime_ns = i128::from(stat.st_ctime as i64) * 1_000_000_000
            + i128::from(stat.st_ctime_nsec as u64);
        Self {
            kind,
            size: u64::try_from(stat.st_size as i64).unwrap_or(0),
            links: stat.st_nlink as u64,
            inode: stat.st_ino as u64,
            uid: stat.st_uid as u32,
            modified: UnixMillis(u64::try_from(mtime_ns / 1_000_000).unwrap_or(0)),
            mtime_ns,
            ctime_ns,
        }
    }

    /// Refuse anything but a regular file with a single name.
    pub fn require_plain_file(&self, path: &SandboxPath) -> Result<(), FileError> {
        let path = path.to_string();
        match self.kind {
            EntryKind::File if self.links > 1 => Err(FileError::Unsafe {
                path,
                reason: "the file has several hard links",
            }),
            EntryKind::File => Ok(()),
            EntryKind::Dir => Err(FileError::WrongKind {
                path,
                what: "a directory",
            }),
            EntryKind::Symlink => Err(FileError::Unsafe {
                path,
                reason: "the path is a symbolic link",
            }),
            EntryKind::Special => Err(FileError::Unsafe {
                path,
                reason: "a FIFO, socket or device is never read",
            }),
        }
    }
}

/// The root of one session disk, held open. Cheap to clone; safe to move to blocking
/// threads.
#[derive(Debug, Clone)]
pub struct DiskRoot {
    fd: Arc<OwnedFd>,
}

impl DiskRoot {
    /// Open the disk mounted at `mount_point` (a host path the worker-host created; the
    /// sandbox cannot replace the mount point itself).
    pub fn open(mount_point: &Path) -> Result<Self, FileError> {
        let fd = rustix::fs::open(
            mount_point,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| FileError::from_errno("/sandbox", e))?;
        Ok(Self { fd: Arc::new(fd) })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open an existing directory for reading entries and as a base for `*at` calls.
    pub fn open_dir(&self, path: &SandboxPath) -> Result<OwnedFd, FileError> {
        match open_beneath(
            self.fd(),
            &relative(path),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(fd),
            // O_DIRECTORY on a final symbolic link reports ENOTDIR, not ELOOP: say what
            // it really is.
            Err(rustix::io::Errno::NOTDIR)
                if self.stat(path).is_ok_and(|m| m.kind == EntryKind::Symlink) =>
            {
                Err(FileError::from_errno(path, rustix::io::Errno::LOOP))
            }
            Err(e) => Err(FileError::from_errno(path, e)),
        }
    }

    /// Open a directory, creating missing components (owned by the sandbox user). Existing
    /// components are used as they are, never re-owned.
    pub fn ensure_dir(&self, path: &SandboxPath) -> Result<OwnedFd, FileError> {
        match self.open_dir(path) {
            Err(FileError::NotFound { .. }) => {}
            other => return other,
        }
        let mut dir = self.open_dir(&SandboxPath::root())?;
        let mut walked = SandboxPath::root();
        for name in path.components() {
            walked = walked.join(name);
            dir = match open_child_dir(dir.as_fd(), name) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        dir.as_fd(),
                        name.as_str(),
                        Mode::from_raw_mode(DIR_MODE),
                    ) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(FileError::from_errno(&walked, e)),
                    }
                    let child = open_child_dir(dir.as_fd(), name)
                        .map_err(|e| FileError::from_errno(&walked, e))?;
                    give_to_sandbox(&child).map_err(|e| FileError::from_errno(&walked, e))?;
                    child
                }
                Err(e) => return Err(FileError::from_errno(&walked, e)),
            };
        }
        Ok(dir)
    }

    /// Open a regular, singly-linked file for reading. Never blocks on a FIFO and never
    /// returns a descriptor for anything else.
    pub fn open_file(&self, path: &SandboxPath) -> Result<(std::fs::File, Meta), FileError> {
        let fd = open_beneath(
            self.fd(),
            &relative(path),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| FileError::from_errno(path, e))?;
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| FileError::from_errno(path, e))?);
        meta.require_plain_file(path)?;
        Ok((std::fs::File::from(fd), meta))
    }

    /// What `path` is, without following a final symbolic link.
    pub fn stat(&self, path: &SandboxPath) -> Result<Meta, FileError> {
        let Some((parent, name)) = path.split_last() else {
            let stat = rustix::fs::fstat(self.fd()).map_err(|e| FileError::from_errno(path, e))?;
            return Ok(Meta::of(&stat));
        };
        let dir = self.open_dir(&parent)?;
        stat_child(dir.as_fd(), name).map_err(|e| FileError::from_errno(path, e))
    }

    /// Delete a regular file. Returns false if there was nothing to delete. Links, FIFOs,
    /// sockets, devices, hard-linked files and directories are refused.
    pub fn delete_file(&self, path: &SandboxPath) -> Result<bool, FileError> {
        let Some((parent, name)) = path.split_last() else {
            return Err(FileError::WrongKind {
                path: path.to_string(),
                what: "the disk root",
            });
        };
        let dir = match self.open_dir(&parent) {
            Err(FileError::NotFound { .. }) => return Ok(false),
            other => other?,
        };
        let meta = match stat_child(dir.as_fd(), name) {
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            other => other.map_err(|e| FileError::from_errno(path, e))?,
        };
        meta.require_plain_file(path)?;
        // Had the sandbox swapped the entry for a link since the check, unlinkat removes
        // the link itself: nothing outside the disk is reachable through it.
        match rustix::fs::unlinkat(dir.as_fd(), name.as_str(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(FileError::from_errno(path, e)),
        }
    }
}

/// `openat2` beneath `dir` with the module's resolution rules and `O_NOFOLLOW`/`O_CLOEXEC`.
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    relative: &str,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    let path = if relative.is_empty() { "." } else { relative };
    loop {
        match rustix::fs::openat2(
            dir,
            path,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
            BENEATH,
        ) {
            // openat2 may ask for a retry when a rename raced the lookup.
            Err(rustix::io::Errno::AGAIN) => continue,
            other => return other,
        }
    }
}

/// Open the directory `name` directly inside `dir`.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &FileName) -> rustix::io::Result<OwnedFd> {
    open_beneath(
        dir,
        name.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
}

/// `stat` an entry of `dir` without following it.
pub(crate) fn stat_child(dir: BorrowedFd<'_>, name: &FileName) -> rustix::io::Result<Meta> {
    rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map(|s| Meta::of(&s))
}

/// Hand something the host just created to the sandbox user (via its descriptor, so a
/// name swapped in by the sandbox is never affected). Skipped when it already belongs to
/// the sandbox user, i.e. the sandbox created it.
pub(crate) fn give_to_sandbox(fd: &OwnedFd) -> rustix::io::Result<()> {
    let stat = rustix::fs::fstat(fd)?;
    if Meta::of(&stat).uid == SANDBOX_UID {
        return Ok(());
    }
    let id = SANDBOX_UID;
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(id)),
        Some(rustix::fs::Gid::from_raw(id)),
    )
}

fn relative(path: &SandboxPath) -> String {
    path.relative()
}
