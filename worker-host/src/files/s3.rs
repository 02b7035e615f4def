//! `s3://bucket/key` transfers with the node's own S3 credentials: streamed downloads,
//! single PUT for small files, multipart upload (streamed parts) above the part size.
//! The endpoint is operator configuration (AWS or any S3-compatible store), so it is not
//! subject to the egress allow-list.

use super::error::FileError;
use super::staged::StagedFile;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Files larger than this go up in parts of this size.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where and as whom `s3://` transfers happen.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible store (`None`: AWS for `region`).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `bucket` in the path instead of the host name (most S3-compatible stores need it).
    pub force_path_style: bool,
    /// Multipart threshold and part size in bytes (S3's minimum part is 5 MiB).
    pub part_size: usize,
}

impl S3Settings {
    /// From `TETHER_S3_ENDPOINT`, `TETHER_S3_REGION` (default `us-east-1`),
    /// `TETHER_S3_ACCESS_KEY_ID`, `TETHER_S3_SECRET_ACCESS_KEY` and
    /// `TETHER_S3_FORCE_PATH_STYLE` (default: on when an endpoint is set). `None` when no
    /// credentials are configured.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let access_key_id = var("TETHER_S3_ACCESS_KEY_ID")?;
        let secret_access_key = Secret::new(var("TETHER_S3_SECRET_ACCESS_KEY")?);
        let endpoint = var("TETHER_S3_ENDPOINT");
        let force_path_style = var("TETHER_S3_FORCE_PATH_STYLE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(endpoint.is_some());
        Some(Self {
            region: var("TETHER_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            access_key_id,
            secret_access_key,
            force_path_style,
            part_size: DEFAULT_PART_SIZE,
        })
    }
}

/// An S3 client for file transfers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    part_size: usize,
}

impl S3Store {
    /// A client for `settings` (no I/O until the first transfer).
    pub fn new(settings: &S3Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose().to_owned(),
            None,
            None,
            "tether",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .http_client(http)
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            // Checksums only where the API demands them: S3-compatible stores differ in
            // their support of the newer flexible-checksum trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            part_size: settings.part_size.max(5 * 1024 * 1024),
        }
    }

    /// The underlying client (tests create buckets with it).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Stream `s3://bucket/key` into `staged`.
    pub async fn download(
        &self,
        bucket: &str,
        key: &str,
        staged: &mut StagedFile,
    ) -> Result<(), FileError> {
        let object = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| remote(bucket, key, e))?;
        staged.check_announced(object.content_length().and_then(|n| u64::try_from(n).ok()))?;
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| remote(bucket, key, e))?;
            staged.write(&chunk).await?;
        }
        Ok(())
    }

    /// Upload `file` (`size` bytes) to `s3://bucket/key`: one PUT up to the part size,
    /// multipart above it (one part in memory at a time; aborted on failure).
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        file: tokio::fs::File,
        size: u64,
    ) -> Result<(), FileError> {
        // Never send more than measured, even if the sandbox appends meanwhile.
        let mut file = file.take(size);
        if size <= self.part_size as u64 {
            let bytes = read_part(&mut file, self.part_size)
                .await
                .map_err(|e| remote(bucket, key, e))?;
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| remote(bucket, key, e))?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| remote(bucket, key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        match self.upload_parts(bucket, key, &upload_id, &mut file).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        file: &mut (impl AsyncRead + Unpin),
    ) -> Result<(), FileError> {
        let mut parts = Vec::new();
        for number in 1.. {
            let bytes = read_part(file, self.part_size)
                .await
                .map_err(|e| remote(bucket, key, e))?;
            if bytes.is_empty() {
                break;
            }
            let part = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| remote(bucket, key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| remote(bucket, key, e))?;
        Ok(())
    }
}

/// Read up to `size` bytes (less only at the end of the file).
async fn read_part(file: &mut (impl AsyncRead + Unpin), size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size);
    file.take(size as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

fn remote<E: std::error::Error>(bucket: &str, key: &str, error: E) -> FileError {
    FileError::Remote {
        url: format!("s3://{bucket}/{key}"),
        detail: DisplayErrorContext(&error).to_string(),
    }
}
