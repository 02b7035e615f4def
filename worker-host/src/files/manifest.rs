//! The per-run file manifest: which files under `/sandbox` a run created or changed.
//!
//! A snapshot is a walk of the disk that records each non-directory entry's inode, size,
//! modification and status-change times; the manifest is the difference between the
//! snapshot before a run and the one after. The walk opens directories beneath the root
//! without following links, stats entries without following them, and is bounded in
//! entries and time, so a disk full of small files costs a bounded delay and reports
//! itself as truncated instead of stalling the session.

use super::disk_root::{DiskRoot, Meta, open_child_dir, stat_child};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use tether_protocol::{EntryKind, FileChange, FileName, SandboxPath};

/// Bounds of one walk.
#[derive(Debug, Clone, Copy)]
pub struct ManifestLimits {
    /// Entries examined before the walk stops (and reports truncation).
    pub max_entries: usize,
    /// Time spent before the walk stops (and reports truncation).
    pub max_time: Duration,
    /// Most changes reported for one run.
    pub max_changes: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self {
            max_entries: 20_000,
            max_time: Duration::from_millis(250),
            max_changes: 1000,
        }
    }
}

/// What identifies a version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    kind: EntryKind,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// The disk's files at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: HashMap<SandboxPath, Fingerprint>,
    /// The walk stopped early: some entries are missing.
    pub truncated: bool,
}

impl Snapshot {
    /// A snapshot of a disk that could not be walked.
    pub fn incomplete() -> Self {
        Self {
            files: HashMap::new(),
            truncated: true,
        }
    }

    /// Number of files recorded.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file was recorded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Walk the disk (blocking: call from a blocking thread).
pub fn snapshot(root: &DiskRoot, limits: ManifestLimits) -> Snapshot {
    let started = Instant::now();
    let mut snap = Snapshot::default();
    let Ok(top) = root.open_dir(&SandboxPath::root()) else {
        snap.truncated = true;
        return snap;
    };
    let mut pending: Vec<(OwnedFd, SandboxPath)> = vec![(top, SandboxPath::root())];
    let mut seen = 0usize;
    while let Some((dir, path)) = pending.pop() {
        let Ok(entries) = rustix::fs::Dir::read_from(dir.as_fd()) else {
            continue;
        };
        for entry in entries {
            let Ok(entry) = entry else { break };
            let raw = entry.file_name().to_string_lossy();
            if raw == "." || raw == ".." {
                continue;
            }
            seen += 1;
            if seen > limits.max_entries || started.elapsed() > limits.max_time {
                snap.truncated = true;
                return snap;
            }
            let Ok(name) = FileName::try_from(raw.as_ref()) else {
                continue;
            };
            let Ok(meta) = stat_child(dir.as_fd(), &name) else {
                continue;
            };
            let child = path.join(&name);
            if meta.kind == EntryKind::Dir {
                if let Ok(fd) = open_child_dir(dir.as_fd(), &name) {
                    pending.push((fd, child));
                }
            } else {
                snap.files.insert(child, fingerprint(&meta));
            }
        }
    }
    snap
}

fn fingerprint(meta: &Meta) -> Fingerprint {
    Fingerprint {
        kind: meta.kind,
        inode: meta.inode,
        size: meta.size,
        mtime_ns: meta.mtime_ns,
        ctime_ns: meta.ctime_ns,
    }
}

/// Files present in `after` that are new or different since `before`, sorted by path,
/// and whether the list may be incomplete.
pub fn changes(
    before: &Snapshot,
    after: &Snapshot,
    limits: ManifestLimits,
) -> (Vec<FileChange>, bool) {
    let mut changed: Vec<(&SandboxPath, &Fingerprint)> = after
        .files
        .iter()
        .filter(|(path, print)| before.files.get(*path) != Some(*print))
        .collect();
    changed.sort_by(|a, b| a.0.cmp(b.0));
    let truncated = before.truncated || after.truncated || changed.len() > limits.max_changes;
    let files = changed
        .into_iter()
        .take(limits.max_changes)
        .map(|(path, print)| FileChange {
            path: path.to_string(),
            size: print.size,
            kind: match print.kind {
                EntryKind::File => "file",
                EntryKind::Symlink => "symlink",
                EntryKind::Dir => "dir",
                EntryKind::Special => "special",
            }
            .to_owned(),
        })
        .collect();
    (files, truncated)
}
