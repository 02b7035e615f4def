//! `http(s)://` transfers through the egress guard: streamed downloads into a staged file,
//! uploads by presigned PUT (streamed body with its length) or presigned POST (the form
//! fields, then the file).

use super::error::FileError;
use super::staged::StagedFile;
use futures::StreamExt;
use reqwest::header::CONTENT_LENGTH;
use reqwest::multipart::{Form, Part};
use std::collections::BTreeMap;
use tether_egress::{Egress, EgressError, Url};
use tether_protocol::RemoteLocation;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

/// Read buffer for uploads.
const UPLOAD_CHUNK: usize = 256 * 1024;

fn shown(url: &Url) -> String {
    RemoteLocation::Http(url.clone()).redacted()
}

fn egress_error(url: &Url, error: EgressError) -> FileError {
    if error.is_refusal() {
        FileError::EgressDenied {
            url: shown(url),
            detail: error.to_string(),
        }
    } else {
        FileError::Remote {
            url: shown(url),
            detail: error.to_string(),
        }
    }
}

/// GET `url` into `staged` (redirects re-checked hop by hop).
pub async fn download(
    egress: &Egress,
    url: &Url,
    staged: &mut StagedFile,
) -> Result<(), FileError> {
    let response = egress
        .get(url.clone())
        .await
        .map_err(|e| egress_error(url, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FileError::Remote {
            url: shown(url),
            detail: format!("the server answered HTTP {status}"),
        });
    }
    staged.check_announced(response.content_length())?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| egress_error(url, e.into()))?;
        staged.write(&chunk).await?;
    }
    Ok(())
}

/// PUT the file's bytes to `url` with an exact `Content-Length` (presigned PUT).
pub async fn upload_put(
    egress: &Egress,
    url: &Url,
    file: tokio::fs::File,
    size: u64,
) -> Result<(), FileError> {
    // Never send more than announced, even if the sandbox appends meanwhile.
    let body =
        reqwest::Body::wrap_stream(ReaderStream::with_capacity(file.take(size), UPLOAD_CHUNK));
    let response = egress
        .send(url.clone(), |client, url| {
            client.put(url).header(CONTENT_LENGTH, size).body(body)
        })
        .await
        .map_err(|e| egress_error(url, e))?;
    accepted(url, response).await
}

/// POST a multipart form to `url`: every presigned field first, then the file as `file`.
pub async fn upload_post(
    egress: &Egress,
    url: &Url,
    fields: &BTreeMap<String, String>,
    file_name: &str,
    file: tokio::fs::File,
    size: u64,
) -> Result<(), FileError> {
    let mut form = Form::new();
    for (key, value) in fields {
        form = form.text(key.clone(), value.clone());
    }
    let body =
        reqwest::Body::wrap_stream(ReaderStream::with_capacity(file.take(size), UPLOAD_CHUNK));
    let part = Part::stream_with_length(body, size)
        .file_name(file_name.to_owned())
        .mime_str("application/octet-stream")
        .map_err(|e| FileError::Remote {
            url: shown(url),
            detail: e.to_string(),
        })?;
    form = form.part("file", part);
    let response = egress
        .send(url.clone(), |client, url| client.post(url).multipart(form))
        .await
        .map_err(|e| egress_error(url, e))?;
    accepted(url, response).await
}

async fn accepted(url: &Url, response: reqwest::Response) -> Result<(), FileError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // Object stores explain refusals in a short XML body; keep a bounded excerpt.
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(300).collect();
    Err(FileError::Remote {
        url: shown(url),
        detail: format!("the server answered HTTP {status}: {excerpt}"),
    })
}
