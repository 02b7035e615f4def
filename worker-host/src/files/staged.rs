//! Writing a file into a session disk without ever leaving a partial file behind: bytes go
//! to a fresh temporary file in the target directory (created `O_EXCL | O_NOFOLLOW`, owned
//! by the sandbox user), which is renamed over the target only once complete. The size
//! limit is enforced while streaming; a failed or abandoned write removes the temporary.

use super::disk_root::{DiskRoot, FILE_MODE, give_to_sandbox, open_beneath};
use super::error::FileError;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::os::fd::{AsFd, OwnedFd};
use tether_protocol::{FileName, SandboxPath};
use tokio::io::AsyncWriteExt;

/// Prefix of temporary files, so leftovers are recognisable.
pub const STAGING_PREFIX: &str = ".tether-upload-";

/// A file being written. Dropping it without [`StagedFile::commit`] removes it.
#[derive(Debug)]
pub struct StagedFile {
    dir: OwnedFd,
    temp_name: String,
    target: SandboxPath,
    name: FileName,
    file: Option<tokio::fs::File>,
    written: u64,
    limit: u64,
}

impl StagedFile {
    /// Start writing `target` (creating its directories), at most `limit` bytes.
    pub fn create(root: &DiskRoot, target: &SandboxPath, limit: u64) -> Result<Self, FileError> {
        let Some((parent, name)) = target.split_last() else {
            return Err(FileError::WrongKind {
                path: target.to_string(),
                what: "the disk root",
            });
        };
        let dir = root.ensure_dir(&parent)?;
        let temp_name = format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let fd = open_beneath(
            dir.as_fd(),
            &temp_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map_err(|e| FileError::from_errno(target, e))?;
        // Not yet visible under its final name; the descriptor is ours.
        give_to_sandbox(&fd).map_err(|e| FileError::from_errno(target, e))?;
        Ok(Self {
            dir,
            temp_name,
            target: target.clone(),
            name: name.clone(),
            file: Some(tokio::fs::File::from_std(std::fs::File::from(fd))),
            written: 0,
            limit,
        })
    }

    /// The path the file will have once committed.
    pub fn target(&self) -> &SandboxPath {
        &self.target
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Fail early when the sender announced a size above the limit.
    pub fn check_announced(&self, size: Option<u64>) -> Result<(), FileError> {
        match size {
            Some(n) if n > self.limit => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    fn too_large(&self) -> FileError {
        FileError::TooLarge {
            path: self.target.to_string(),
            limit: self.limit,
        }
    }

    /// Append a chunk, refusing to go past the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        let len = chunk.len() as u64;
        if self.written + len > self.limit {
            return Err(self.too_large());
        }
        let file = self.file.as_mut().ok_or_else(|| FileError::Io {
            path: self.target.to_string(),
            detail: "write after close".into(),
        })?;
        file.write_all(chunk)
            .await
            .map_err(|e| FileError::from_io(&self.target, &e))?;
        self.written += len;
        Ok(())
    }

    /// Finish the file and rename it over the target. Returns its size.
    pub async fn commit(mut self) -> Result<u64, FileError> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| FileError::from_io(&self.target, &e))?;
            file.sync_data()
                .await
                .map_err(|e| FileError::from_io(&self.target, &e))?;
        }
        // renameat replaces whatever entry has the target name (a link is replaced, never
        // followed); a directory there makes it fail.
        rustix::fs::renameat(
            self.dir.as_fd(),
            &self.temp_name,
            self.dir.as_fd(),
            self.name.as_str(),
        )
        .map_err(|e| FileError::from_errno(&self.target, e))?;
        self.temp_name.clear();
        Ok(self.written)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.temp_name.is_empty() {
            let _ = rustix::fs::unlinkat(self.dir.as_fd(), &self.temp_name, AtFlags::empty());
        }
    }
}
