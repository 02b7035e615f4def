//! File job requests: the seed's wire items (plain strings, as clients send them) and the
//! validated specs a job carries. Conversion names the offending entry, e.g.
//! `files[3].path: must not contain '..'`.

use super::location::RemoteLocation;
use super::path::{FileName, SandboxPath};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Most entries one file request may carry.
pub const MAX_FILES_PER_REQUEST: usize = 100;

/// A seed import entry: fetch `download_url` into `path/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportItem {
    pub download_url: String,
    /// The directory to write into, e.g. `/sandbox/data/`.
    pub path: String,
    pub name: String,
}

/// A seed export entry: upload `path/name` to `upload_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportItem {
    pub path: String,
    pub name: String,
    pub upload_url: String,
    /// `PUT` (default) or `POST` (presigned POST form).
    #[serde(default)]
    pub method: Option<String>,
    /// The presigned POST form fields, sent before the file.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// A seed delete entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteItem {
    pub path: String,
    pub name: String,
}

/// How an export reaches an `http(s)` URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UploadMethod {
    /// The body is the file (presigned PUT).
    #[default]
    #[serde(rename = "PUT")]
    Put,
    /// A multipart form: the presigned fields, then the file (presigned POST).
    #[serde(rename = "POST")]
    Post,
}

/// A validated import entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportFile {
    pub download_url: RemoteLocation,
    pub path: SandboxPath,
    pub name: FileName,
}

impl ImportFile {
    /// Where the file lands.
    pub fn target(&self) -> SandboxPath {
        self.path.join(&self.name)
    }
}

/// A validated export entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub path: SandboxPath,
    pub name: FileName,
    pub upload_url: RemoteLocation,
    #[serde(default)]
    pub method: UploadMethod,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl ExportFile {
    /// The file to upload.
    pub fn source(&self) -> SandboxPath {
        self.path.join(&self.name)
    }
}

/// A validated delete entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFile {
    pub path: SandboxPath,
    pub name: FileName,
}

impl DeleteFile {
    /// The file to delete.
    pub fn target(&self) -> SandboxPath {
        self.path.join(&self.name)
    }
}

/// `files.import`: fetch each entry into the session disk (all or nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSpec {
    pub files: Vec<ImportFile>,
}

/// `files.export`: upload each entry from the session disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    pub files: Vec<ExportFile>,
}

/// `files.delete`: remove each entry from the session disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSpec {
    pub files: Vec<DeleteFile>,
}

/// A file request that cannot be carried out as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesRequestError {
    /// The offending entry (`None`: the list as a whole).
    pub index: Option<usize>,
    /// The offending field (`files` for the list as a whole).
    pub field: &'static str,
    pub reason: String,
}

impl fmt::Display for FilesRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "files[{i}].{}: {}", self.field, self.reason),
            None => write!(f, "{}: {}", self.field, self.reason),
        }
    }
}

impl std::error::Error for FilesRequestError {}

fn check_count<T>(items: &[T]) -> Result<(), FilesRequestError> {
    if items.len() > MAX_FILES_PER_REQUEST {
        return Err(FilesRequestError {
            index: None,
            field: "files",
            reason: format!(
                "at most {MAX_FILES_PER_REQUEST} entries per request (got {})",
                items.len()
            ),
        });
    }
    Ok(())
}

fn field<T, E: fmt::Display>(
    index: usize,
    field: &'static str,
    parsed: Result<T, E>,
) -> Result<T, FilesRequestError> {
    parsed.map_err(|e| FilesRequestError {
        index: Some(index),
        field,
        reason: e.to_string(),
    })
}

impl TryFrom<Vec<ImportItem>> for ImportSpec {
    type Error = FilesRequestError;
    fn try_from(items: Vec<ImportItem>) -> Result<Self, Self::Error> {
        check_count(&items)?;
        let files = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                Ok(ImportFile {
                    download_url: field(
                        i,
                        "download_url",
                        RemoteLocation::try_from(item.download_url),
                    )?,
                    path: field(i, "path", SandboxPath::try_from(item.path))?,
                    name: field(i, "name", FileName::try_from(item.name))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { files })
    }
}

impl TryFrom<Vec<ExportItem>> for ExportSpec {
    type Error = FilesRequestError;
    fn try_from(items: Vec<ExportItem>) -> Result<Self, Self::Error> {
        check_count(&items)?;
        let files = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let method = match item
                    .method
                    .as_deref()
                    .map(str::to_ascii_uppercase)
                    .as_deref()
                {
                    None | Some("PUT") => UploadMethod::Put,
                    Some("POST") => UploadMethod::Post,
                    Some(other) => {
                        return Err(FilesRequestError {
                            index: Some(i),
                            field: "method",
                            reason: format!("must be PUT or POST (got '{other}')"),
                        });
                    }
                };
                let upload_url = field(i, "upload_url", RemoteLocation::try_from(item.upload_url))?;
                if method == UploadMethod::Post && matches!(upload_url, RemoteLocation::S3 { .. }) {
                    return Err(FilesRequestError {
                        index: Some(i),
                        field: "method",
                        reason: "POST applies to presigned http(s) URLs, not s3://".into(),
                    });
                }
                Ok(ExportFile {
                    path: field(i, "path", SandboxPath::try_from(item.path))?,
                    name: field(i, "name", FileName::try_from(item.name))?,
                    upload_url,
                    method,
                    fields: item.fields.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { files })
    }
}

impl TryFrom<Vec<DeleteItem>> for DeleteSpec {
    type Error = FilesRequestError;
    fn try_from(items: Vec<DeleteItem>) -> Result<Self, Self::Error> {
        check_count(&items)?;
        let files = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                Ok(DeleteFile {
                    path: field(i, "path", SandboxPath::try_from(item.path))?,
                    name: field(i, "name", FileName::try_from(item.name))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(url: &str, path: &str, name: &str) -> ImportItem {
        ImportItem {
            download_url: url.into(),
            path: path.into(),
            name: name.into(),
        }
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let ok = import("https://h/a.csv", "/sandbox/", "a.csv");
        let items = vec![ok.clone(), import("https://h/b", "/sandbox/../etc", "b")];
        let err = ImportSpec::try_from(items).unwrap_err();
        assert_eq!(err.to_string(), "files[1].path: must not contain '..'");

        let err = ImportSpec::try_from(vec![
            ok.clone(),
            ok.clone(),
            import("https://h/", "/sandbox", "a/b"),
        ])
        .unwrap_err();
        assert_eq!((err.index, err.field), (Some(2), "name"));

        let err =
            ImportSpec::try_from(vec![import("file:///etc/passwd", "/sandbox", "p")]).unwrap_err();
        assert_eq!((err.index, err.field), (Some(0), "download_url"));
        assert!(err.to_string().contains("file"), "{err}");

        let err = ImportSpec::try_from(vec![ok.clone(); 101]).unwrap_err();
        assert_eq!((err.index, err.field), (None, "files"));
        assert!(ImportSpec::try_from(vec![ok; 100]).is_ok());
    }

    #[test]
    fn seed_shapes_round_trip() {
        let json = serde_json::json!([{
            "path": "/sandbox/out", "name": "chart.png",
            "upload_url": "https://s3.example.com/b", "method": "POST",
            "fields": {"key": "chart.png", "policy": "p"}
        }]);
        let items: Vec<ExportItem> = serde_json::from_value(json).unwrap();
        let spec = ExportSpec::try_from(items).unwrap();
        assert_eq!(spec.files[0].method, UploadMethod::Post);
        assert_eq!(spec.files[0].source().to_string(), "/sandbox/out/chart.png");
        let wire = serde_json::to_value(&spec).unwrap();
        assert_eq!(wire["files"][0]["upload_url"], "https://s3.example.com/b");
        assert_eq!(wire["files"][0]["method"], "POST");
        let back: ExportSpec = serde_json::from_value(wire).unwrap();
        assert_eq!(back, spec);

        let typo = serde_json::json!([{"path": "/sandbox", "name": "a", "upload_url": "https://h/", "metod": "POST"}]);
        assert!(serde_json::from_value::<Vec<ExportItem>>(typo).is_err());
    }

    #[test]
    fn post_to_s3_and_unknown_methods_are_refused() {
        let item = |url: &str, method: &str| ExportItem {
            path: "/sandbox".into(),
            name: "a".into(),
            upload_url: url.into(),
            method: Some(method.into()),
            fields: None,
        };
        assert!(ExportSpec::try_from(vec![item("s3://bucket/a", "POST")]).is_err());
        assert!(ExportSpec::try_from(vec![item("https://h/", "PATCH")]).is_err());
        assert!(ExportSpec::try_from(vec![item("https://h/", "put")]).is_ok());
    }
}
