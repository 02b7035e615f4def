//! The file operations a session runs in its queue, each with its own reply channel, and
//! the streaming types of direct transfer.
//!
//! Direct uploads arrive as a channel of chunks, so a 200 MiB body never sits in memory:
//! the caller forwards chunks as they come and the session writes them to a staged file.
//! Direct downloads hand back an open, checked descriptor: the session's queue is held
//! only for the open, not for however long the client takes to read.

use super::disk_root::DiskRoot;
use super::error::{FileError, FileFailure};
use super::listing::list_dir;
use super::staged::StagedFile;
use super::transfer::Transfers;
use crate::engine::EngineError;
use bytes::Bytes;
use futures::Stream;
use tether_protocol::files::{DeletedFile, ExportedFile, ImportedFile};
use tether_protocol::{DeleteSpec, DirListing, ExportSpec, ImportSpec, SandboxPath, UnixMillis};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::ReaderStream;

/// One piece of a direct upload. A body that ends without [`BodyChunk::End`] (the sender
/// was dropped: the client went away) is discarded, never committed.
#[derive(Debug)]
pub enum BodyChunk {
    Data(Bytes),
    End,
}

/// An opened file, ready to stream to a client.
#[derive(Debug)]
pub struct FileDownload {
    pub path: SandboxPath,
    /// Bytes the stream yields (the size when opened; later growth is not sent).
    pub size: u64,
    pub modified: UnixMillis,
    file: tokio::fs::File,
}

impl FileDownload {
    /// The file's bytes in chunks, exactly `size` of them.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        ReaderStream::with_capacity(self.file.take(self.size), 256 * 1024)
    }
}

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// A file operation for one session.
#[derive(Debug)]
pub enum FileOp {
    Import {
        spec: ImportSpec,
        reply: Reply<Vec<ImportedFile>>,
    },
    Export {
        spec: ExportSpec,
        reply: Reply<Vec<ExportedFile>>,
    },
    Delete {
        spec: DeleteSpec,
        reply: Reply<Vec<DeletedFile>>,
    },
    /// Write a file from a stream of chunks (direct upload).
    Write {
        path: SandboxPath,
        /// Size the client announced (`Content-Length`), checked against the limit up front.
        announced: Option<u64>,
        body: mpsc::Receiver<BodyChunk>,
        reply: Reply<ImportedFile>,
    },
    /// Open a file for a direct download.
    Read {
        path: SandboxPath,
        reply: Reply<FileDownload>,
    },
    /// List a directory.
    List {
        path: SandboxPath,
        reply: Reply<DirListing>,
    },
}

impl FileOp {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            FileOp::Import { .. } => "files.import",
            FileOp::Export { .. } => "files.export",
            FileOp::Delete { .. } => "files.delete",
            FileOp::Write { .. } => "files.write",
            FileOp::Read { .. } => "files.read",
            FileOp::List { .. } => "files.list",
        }
    }

    /// Whether the operation may change the disk (the manifest baseline is then stale).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            FileOp::Import { .. } | FileOp::Delete { .. } | FileOp::Write { .. }
        )
    }

    /// Answer without running.
    pub fn fail(self, error: EngineError) {
        match self {
            FileOp::Import { reply, .. } => drop(reply.send(Err(error))),
            FileOp::Export { reply, .. } => drop(reply.send(Err(error))),
            FileOp::Delete { reply, .. } => drop(reply.send(Err(error))),
            FileOp::Write { reply, .. } => drop(reply.send(Err(error))),
            FileOp::Read { reply, .. } => drop(reply.send(Err(error))),
            FileOp::List { reply, .. } => drop(reply.send(Err(error))),
        }
    }

    /// Run against the session disk mounted at `mount_point` and reply.
    pub async fn run(self, mount_point: &std::path::Path, transfers: &Transfers) {
        let root = DiskRoot::open(mount_point).map_err(|e| EngineError::Files(e.into()));
        let root = match root {
            Ok(root) => root,
            Err(e) => return self.fail(e),
        };
        match self {
            FileOp::Import { spec, reply } => {
                let _ = reply.send(files(transfers.import(&root, &spec.files).await));
            }
            FileOp::Export { spec, reply } => {
                let _ = reply.send(files(transfers.export(&root, &spec.files).await));
            }
            FileOp::Delete { spec, reply } => {
                let _ = reply.send(files(transfers.delete(&root, &spec.files)));
            }
            FileOp::Write {
                path,
                announced,
                body,
                reply,
            } => {
                let written = write(
                    &root,
                    &path,
                    announced,
                    body,
                    transfers.config.max_file_bytes,
                )
                .await;
                let _ = reply.send(files(written.map_err(FileFailure::from)));
            }
            FileOp::Read { path, reply } => {
                let opened = root.open_file(&path).map(|(file, meta)| FileDownload {
                    path,
                    size: meta.size,
                    modified: meta.modified,
                    file: tokio::fs::File::from_std(file),
                });
                let _ = reply.send(files(opened.map_err(FileFailure::from)));
            }
            FileOp::List { path, reply } => {
                let max = transfers.config.max_list_entries;
                let listed = tokio::task::spawn_blocking(move || list_dir(&root, &path, max))
                    .await
                    .unwrap_or_else(|e| {
                        Err(FileError::Io {
                            path: "/sandbox".into(),
                            detail: e.to_string(),
                        })
                    });
                let _ = reply.send(files(listed.map_err(FileFailure::from)));
            }
        }
    }
}

fn files<T>(result: Result<T, FileFailure>) -> Result<T, EngineError> {
    result.map_err(EngineError::Files)
}

async fn write(
    root: &DiskRoot,
    path: &SandboxPath,
    announced: Option<u64>,
    mut body: mpsc::Receiver<BodyChunk>,
    limit: u64,
) -> Result<ImportedFile, FileError> {
    let mut staged = StagedFile::create(root, path, limit)?;
    staged.check_announced(announced)?;
    loop {
        match body.recv().await {
            Some(BodyChunk::Data(chunk)) => staged.write(&chunk).await?,
            Some(BodyChunk::End) => break,
            None => {
                return Err(FileError::Io {
                    path: path.to_string(),
                    detail: "the upload ended early; nothing was written".into(),
                });
            }
        }
    }
    let size = staged.commit().await?;
    Ok(ImportedFile {
        full_path: path.to_string(),
        size,
    })
}
