//! What file jobs and direct file operations report back.

use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// One imported file (seed shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedFile {
    /// Absolute sandbox path of the written file.
    pub full_path: String,
    pub size: u64,
}

/// One exported file (seed shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFile {
    pub path: String,
    pub name: String,
    pub size: u64,
}

/// One delete entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedFile {
    pub path: String,
    pub name: String,
    /// False when there was nothing to delete (deleting is idempotent).
    pub deleted: bool,
}

/// What a directory entry is. Links are reported, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// FIFO, socket or device: never read by the host.
    Special,
}

impl EntryKind {
    /// The wire name (`file`, `dir`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Special => "special",
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    /// Absolute sandbox path.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes for files; the file system's figure for others.
    pub size: u64,
    pub modified: UnixMillis,
}

/// A directory listing, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    /// The listed directory.
    pub path: String,
    pub entries: Vec<DirEntry>,
    /// True when the directory held more entries than a listing returns.
    #[serde(default)]
    pub truncated: bool,
}
