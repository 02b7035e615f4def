//! Where a file comes from or goes to outside the sandbox: an `http(s)://` URL (fetched
//! through the egress checks) or an `s3://bucket/key` object (fetched with the node's S3
//! credentials).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a transfer URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("is not a valid URL: {0}")]
    Malformed(String),
    #[error("scheme '{0}' is not allowed (use http, https or s3)")]
    Scheme(String),
    #[error("has no host")]
    NoHost,
    #[error("must be s3://bucket/key with a valid bucket name and a non-empty key")]
    BadS3,
}

/// An outside location of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RemoteLocation {
    /// A plain or presigned `http`/`https` URL.
    Http(url::Url),
    /// An object in the S3-compatible store the node is configured for.
    S3 { bucket: String, key: String },
}

impl TryFrom<&str> for RemoteLocation {
    type Error = LocationError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let value = value.trim();
        if let Some(rest) = strip_prefix_ignore_case(value, "s3://") {
            let (bucket, key) = rest.split_once('/').ok_or(LocationError::BadS3)?;
            if !valid_bucket(bucket) || key.is_empty() || key.contains('\0') {
                return Err(LocationError::BadS3);
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        let url = url::Url::parse(value).map_err(|e| LocationError::Malformed(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(LocationError::Scheme(other.to_owned())),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(LocationError::NoHost);
        }
        Ok(Self::Http(url))
    }
}

impl TryFrom<String> for RemoteLocation {
    type Error = LocationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<RemoteLocation> for String {
    fn from(value: RemoteLocation) -> Self {
        value.to_string()
    }
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteLocation::Http(url) => f.write_str(url.as_str()),
            RemoteLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl RemoteLocation {
    /// A form safe for logs and error messages: presigned query strings carry credentials,
    /// so only scheme, host and path are shown.
    pub fn redacted(&self) -> String {
        match self {
            RemoteLocation::Http(url) => {
                let host = url.host_str().unwrap_or_default();
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{host}{port}{}", url.scheme(), url.path())
            }
            other => other.to_string(),
        }
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// S3 bucket naming rules (3–63 of a-z, 0-9, '.', '-'; starts and ends alphanumeric).
fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_s3_and_refusals() {
        assert!(matches!(
            RemoteLocation::try_from("https://example.com/a.csv?X-Amz-Signature=abc"),
            Ok(RemoteLocation::Http(_))
        ));
        assert_eq!(
            RemoteLocation::try_from("s3://my-bucket/dir/a b.csv"),
            Ok(RemoteLocation::S3 {
                bucket: "my-bucket".into(),
                key: "dir/a b.csv".into()
            })
        );
        assert_eq!(
            RemoteLocation::try_from("file:///etc/passwd"),
            Err(LocationError::Scheme("file".into()))
        );
        assert_eq!(
            RemoteLocation::try_from("gopher://x/"),
            Err(LocationError::Scheme("gopher".into()))
        );
        assert_eq!(
            RemoteLocation::try_from("s3://b/x"),
            Err(LocationError::BadS3)
        );
        assert_eq!(
            RemoteLocation::try_from("s3://bucket/"),
            Err(LocationError::BadS3)
        );
        assert_eq!(
            RemoteLocation::try_from("s3://Bucket/k"),
            Err(LocationError::BadS3)
        );
        assert!(matches!(
            RemoteLocation::try_from("not a url"),
            Err(LocationError::Malformed(_))
        ));
    }

    #[test]
    fn redaction_drops_the_query() {
        let loc =
            RemoteLocation::try_from("https://h:8443/p/a.csv?X-Amz-Signature=secret").unwrap();
        assert_eq!(loc.redacted(), "https://h:8443/p/a.csv");
    }
}
