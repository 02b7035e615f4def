//! The client side of a worker-host's internal file endpoint: direct uploads, downloads and
//! listings go straight to the node that holds the session, streamed both ways so that
//! memory stays flat whatever the file size. Requests carry the deployment's
//! [`InternalToken`]; the node's refusals become [`ApiError`]s with their stable codes.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{StatusCode, header};
use std::time::Duration;
use tether_dispatcher::NodeReport;
use tether_protocol::files::{ImportedFile, TransferRefusal};
use tether_protocol::{DirListing, ErrorCode, SandboxPath, UserUuid};
use tether_transport::{INTERNAL_TOKEN_HEADER, InternalToken};

/// How long connecting to a node may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait suggested to clients when a node cannot be reached.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Calls nodes' file endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    client: reqwest::Client,
    /// `None`: direct transfer is not configured on this API (answers 503).
    token: Option<InternalToken>,
}

/// An open download from a node: its size and its bytes, not yet read.
#[derive(Debug)]
pub struct NodeDownload {
    pub size: Option<u64>,
    pub body: Body,
}

impl NodeFiles {
    pub fn new(token: Option<InternalToken>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { client, token }
    }

    fn request(
        &self,
        method: reqwest::Method,
        node: &NodeReport,
        endpoint: &str,
        user: UserUuid,
        path: &SandboxPath,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let token = self.token.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "Direct file transfer is not configured on this server.",
            )
            .with_message("set TETHER_INTERNAL_TOKEN on the API and every worker-host")
        })?;
        let base = node.file_url.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "The node holding this session does not serve direct file transfer.",
            )
            .with_message(format!("node {} advertises no file_url", node.id))
            .with_retry_after(RETRY_AFTER)
        })?;
        let url = format!("{}/internal/v1/{endpoint}", base.trim_end_matches('/'));
        Ok(self
            .client
            .request(method, url)
            .header(INTERNAL_TOKEN_HEADER, token.expose_secret())
            .query(&[("user_uuid", user.to_string()), ("path", path.to_string())]))
    }

    /// Stream `body` into `path` on `node`; `announced` is the client's `Content-Length`.
    pub async fn upload(
        &self,
        node: &NodeReport,
        user: UserUuid,
        path: &SandboxPath,
        announced: Option<u64>,
        body: Body,
    ) -> Result<ImportedFile, ApiError> {
        let mut request = self
            .request(reqwest::Method::PUT, node, "files", user, path)?
            .body(reqwest::Body::wrap_stream(body.into_data_stream()));
        if let Some(len) = announced {
            request = request.header(header::CONTENT_LENGTH, len);
        }
        let response = send(node, request).await?;
        json(node, response).await
    }

    /// Open `path` on `node` for reading; the bytes stream as the client reads them.
    pub async fn download(
        &self,
        node: &NodeReport,
        user: UserUuid,
        path: &SandboxPath,
    ) -> Result<NodeDownload, ApiError> {
        let request = self.request(reqwest::Method::GET, node, "files", user, path)?;
        let response = checked(node, send(node, request).await?).await?;
        Ok(NodeDownload {
            size: response.content_length(),
            body: Body::from_stream(response.bytes_stream()),
        })
    }

    /// List the directory `path` on `node`.
    pub async fn list(
        &self,
        node: &NodeReport,
        user: UserUuid,
        path: &SandboxPath,
    ) -> Result<DirListing, ApiError> {
        let request = self.request(reqwest::Method::GET, node, "dirs", user, path)?;
        let response = send(node, request).await?;
        json(node, response).await
    }
}

async fn send(
    node: &NodeReport,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ApiError> {
    request.send().await.map_err(|e| unreachable(node, &e))
}

fn unreachable(node: &NodeReport, e: &reqwest::Error) -> ApiError {
    let (code, detail) = if e.is_timeout() {
        (
            ErrorCode::SandboxUnavailable,
            "The node holding this session did not answer in time. Please try again shortly.",
        )
    } else {
        (
            ErrorCode::Unavailable,
            "The node holding this session cannot be reached right now. Please try again shortly.",
        )
    };
    ApiError::new(code, detail)
        .with_message(format!("node {}: {e}", node.id))
        .with_retry_after(RETRY_AFTER)
}

/// The response if the node accepted the request, else its refusal as an [`ApiError`].
async fn checked(
    node: &NodeReport,
    response: reqwest::Response,
) -> Result<reqwest::Response, ApiError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let refusal = response.json::<TransferRefusal>().await.ok();
    Err(match refusal {
        Some(TransferRefusal {
            code: ErrorCode::Unauthorized,
            ..
        }) => ApiError::internal(format!(
            "node {} refused the internal token: the API and every worker-host must share TETHER_INTERNAL_TOKEN",
            node.id
        )),
        Some(TransferRefusal { code, message }) => {
            let error = ApiError::new(code, message);
            match code {
                ErrorCode::NoCapacity | ErrorCode::Unavailable => {
                    error.with_retry_after(RETRY_AFTER)
                }
                _ => error,
            }
        }
        None if status == StatusCode::NOT_FOUND => ApiError::internal(format!(
            "node {} has no file endpoint at its advertised file_url",
            node.id
        )),
        None => ApiError::internal(format!("node {} answered {status}", node.id)),
    })
}

async fn json<T: serde::de::DeserializeOwned>(
    node: &NodeReport,
    response: reqwest::Response,
) -> Result<T, ApiError> {
    checked(node, response)
        .await?
        .json::<T>()
        .await
        .map_err(|e| match e.is_decode() {
            true => ApiError::internal(format!("node {} sent an unreadable answer: {e}", node.id)),
            false => unreachable(node, &e),
        })
}
