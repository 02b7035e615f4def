//! Directory listings of a session disk: entries are described, never followed.

use super::disk_root::{DiskRoot, Meta, stat_child};
use super::error::FileError;
use std::os::fd::AsFd;
use tether_protocol::{DirEntry, DirListing, FileName, SandboxPath};

/// List `path` (a directory), at most `max_entries` entries, sorted by name.
pub fn list_dir(
    root: &DiskRoot,
    path: &SandboxPath,
    max_entries: usize,
) -> Result<DirListing, FileError> {
    let meta = root.stat(path)?;
    if meta.kind != tether_protocol::EntryKind::Dir {
        return Err(match meta.kind {
            tether_protocol::EntryKind::Symlink => FileError::Unsafe {
                path: path.to_string(),
                reason: "the path is a symbolic link",
            },
            _ => FileError::WrongKind {
                path: path.to_string(),
                what: "not a directory",
            },
        });
    }
    let dir = root.open_dir(path)?;
    let entries =
        rustix::fs::Dir::read_from(dir.as_fd()).map_err(|e| FileError::from_errno(path, e))?;
    let mut listed = Vec::new();
    let mut truncated = false;
    for entry in entries {
        let entry = entry.map_err(|e| FileError::from_errno(path, e))?;
        let raw = entry.file_name().to_string_lossy();
        if raw == "." || raw == ".." {
            continue;
        }
        if listed.len() == max_entries {
            truncated = true;
            break;
        }
        let Ok(name) = FileName::try_from(raw.as_ref()) else {
            continue;
        };
        // The entry may vanish between readdir and stat (the sandbox is running).
        let Ok(meta) = stat_child(dir.as_fd(), &name) else {
            continue;
        };
        listed.push(entry_of(path, name, &meta));
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(DirListing {
        path: path.to_string(),
        entries: listed,
        truncated,
    })
}

fn entry_of(dir: &SandboxPath, name: FileName, meta: &Meta) -> DirEntry {
    DirEntry {
        path: dir.join(&name).to_string(),
        name: name.into(),
        kind: meta.kind,
        size: meta.size,
        modified: meta.modified,
    }
}
