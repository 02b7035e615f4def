//! File jobs against one session disk: import (all or nothing), export, delete.

use super::disk_root::DiskRoot;
use super::error::{FileError, FileFailure};
use super::staged::StagedFile;
use super::{FilesConfig, http, s3::S3Store};
use futures::{StreamExt, TryStreamExt, stream};
use tether_egress::Egress;
use tether_protocol::RemoteLocation;
use tether_protocol::files::{
    DeleteFile, DeletedFile, ExportFile, ExportedFile, ImportFile, ImportedFile, UploadMethod,
};

/// Everything a file job needs besides the disk: outbound HTTP, S3, limits.
#[derive(Debug, Clone)]
pub struct Transfers {
    pub config: FilesConfig,
    s3: Option<S3Store>,
}

impl Transfers {
    /// Build the S3 client (if configured); no I/O.
    pub fn new(config: FilesConfig) -> Self {
        let s3 = config.s3.as_ref().map(S3Store::new);
        Self { config, s3 }
    }

    fn egress(&self) -> &Egress {
        &self.config.egress
    }

    fn s3(&self) -> Result<&S3Store, FileError> {
        self.s3.as_ref().ok_or(FileError::S3NotConfigured)
    }

    /// Fetch every entry to a temporary file (a bounded number at once), then move them
    /// all into place. If any fetch fails, nothing is written.
    pub async fn import(
        &self,
        root: &DiskRoot,
        files: &[ImportFile],
    ) -> Result<Vec<ImportedFile>, FileFailure> {
        let fetches: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| self.fetch(root, i, f))
            .collect();
        let staged: Vec<StagedFile> = stream::iter(fetches)
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        let mut results = Vec::with_capacity(files.len());
        for (i, (file, staged)) in files.iter().zip(staged).enumerate() {
            let size = staged.commit().await.map_err(|e| FileFailure::at(i, e))?;
            results.push(ImportedFile {
                full_path: file.target().to_string(),
                size,
            });
        }
        Ok(results)
    }

    async fn fetch(
        &self,
        root: &DiskRoot,
        index: usize,
        file: &ImportFile,
    ) -> Result<StagedFile, FileFailure> {
        self.fetch_one(root, file)
            .await
            .map_err(|e| FileFailure::at(index, e))
    }

    async fn fetch_one(&self, root: &DiskRoot, file: &ImportFile) -> Result<StagedFile, FileError> {
        let mut staged = StagedFile::create(root, &file.target(), self.config.max_file_bytes)?;
        match &file.download_url {
            RemoteLocation::Http(url) => http::download(self.egress(), url, &mut staged).await?,
            RemoteLocation::S3 { bucket, key } => {
                self.s3()?.download(bucket, key, &mut staged).await?
            }
        }
        Ok(staged)
    }

    /// Upload every entry (a bounded number at once). Stops at the first failure.
    pub async fn export(
        &self,
        root: &DiskRoot,
        files: &[ExportFile],
    ) -> Result<Vec<ExportedFile>, FileFailure> {
        let uploads: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| self.upload(root, i, f))
            .collect();
        stream::iter(uploads)
            .buffered(self.config.concurrency.max(1))
            .try_collect()
            .await
    }

    async fn upload(
        &self,
        root: &DiskRoot,
        index: usize,
        file: &ExportFile,
    ) -> Result<ExportedFile, FileFailure> {
        self.upload_one(root, file)
            .await
            .map_err(|e| FileFailure::at(index, e))
    }

    async fn upload_one(
        &self,
        root: &DiskRoot,
        file: &ExportFile,
    ) -> Result<ExportedFile, FileError> {
        let (source, meta) = root.open_file(&file.source())?;
        let source = tokio::fs::File::from_std(source);
        match (&file.upload_url, file.method) {
            (RemoteLocation::Http(url), UploadMethod::Put) => {
                http::upload_put(self.egress(), url, source, meta.size).await?;
            }
            (RemoteLocation::Http(url), UploadMethod::Post) => {
                http::upload_post(
                    self.egress(),
                    url,
                    &file.fields,
                    file.name.as_str(),
                    source,
                    meta.size,
                )
                .await?;
            }
            (RemoteLocation::S3 { bucket, key }, _) => {
                self.s3()?.upload(bucket, key, source, meta.size).await?;
            }
        }
        Ok(ExportedFile {
            path: file.path.to_string(),
            name: file.name.to_string(),
            size: meta.size,
        })
    }

    /// Delete every entry. All entries are checked first, so a refused entry (a link, a
    /// FIFO, …) means nothing was deleted. Missing files are not an error.
    pub fn delete(
        &self,
        root: &DiskRoot,
        files: &[DeleteFile],
    ) -> Result<Vec<DeletedFile>, FileFailure> {
        for (i, file) in files.iter().enumerate() {
            let target = file.target();
            match root.stat(&target) {
                Ok(meta) => meta
                    .require_plain_file(&target)
                    .map_err(|e| FileFailure::at(i, e))?,
                Err(FileError::NotFound { .. }) => {}
                Err(e) => return Err(FileFailure::at(i, e)),
            }
        }
        files
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let deleted = root
                    .delete_file(&file.target())
                    .map_err(|e| FileFailure::at(i, e))?;
                Ok(DeletedFile {
                    path: file.path.to_string(),
                    name: file.name.to_string(),
                    deleted,
                })
            })
            .collect()
    }
}
