//! Where a file lives in a session: `/sandbox/…` paths and single file names, parsed once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The session disk as the sandbox sees it.
pub const SANDBOX_ROOT: &str = "/sandbox";

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted single component, in bytes (ext4's limit).
const MAX_NAME_BYTES: usize = 255;

/// Why a path or a file name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("must be an absolute path such as /sandbox/data")]
    NotAbsolute,
    #[error("must be /sandbox or a path below it")]
    NotUnderSandbox,
    #[error("must not contain '..'")]
    ParentComponent,
    #[error("must not contain a NUL byte")]
    Nul,
    #[error("must not contain a backslash")]
    Backslash,
    #[error("must not contain '/'")]
    Slash,
    #[error("must not be empty, '.' or '..'")]
    DotOrEmpty,
    #[error("is too long")]
    TooLong,
    #[error("must name a file below /sandbox, not /sandbox itself")]
    IsRoot,
}

/// A normalised path at or below `/sandbox`: absolute, no `..`, no empty or `.` components,
/// no NUL or backslash. Stored as its components below `/sandbox`, so the host side can
/// resolve it beneath the disk root one component at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SandboxPath {
    components: Vec<FileName>,
}

impl SandboxPath {
    /// `/sandbox` itself.
    pub fn root() -> Self {
        Self { components: vec![] }
    }

    /// The components below `/sandbox` (empty for the root).
    pub fn components(&self) -> &[FileName] {
        &self.components
    }

    /// Whether this is `/sandbox` itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// This directory with `name` appended.
    pub fn join(&self, name: &FileName) -> SandboxPath {
        let mut components = self.components.clone();
        components.push(name.clone());
        Self { components }
    }

    /// The containing directory and the last component; `None` for `/sandbox`.
    pub fn split_last(&self) -> Option<(SandboxPath, &FileName)> {
        let (last, parent) = self.components.split_last()?;
        Some((
            SandboxPath {
                components: parent.to_vec(),
            },
            last,
        ))
    }

    /// The path below `/sandbox` without a leading slash (`""` for the root): what the
    /// host resolves beneath the disk root.
    pub fn relative(&self) -> String {
        let parts: Vec<&str> = self.components.iter().map(FileName::as_str).collect();
        parts.join("/")
    }

    /// A path naming a file (not the root), as direct transfers need.
    pub fn file(self) -> Result<SandboxPath, PathError> {
        if self.is_root() {
            Err(PathError::IsRoot)
        } else {
            Ok(self)
        }
    }
}

impl TryFrom<&str> for SandboxPath {
    type Error = PathError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if value.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if value.contains('\0') {
            return Err(PathError::Nul);
        }
        if value.contains('\\') {
            return Err(PathError::Backslash);
        }
        if !value.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        let mut parts = Vec::new();
        for part in value.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::ParentComponent),
                other => parts.push(other),
            }
        }
        let mut parts = parts.into_iter();
        if parts.next() != Some("sandbox") {
            return Err(PathError::NotUnderSandbox);
        }
        let components = parts
            .map(FileName::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { components })
    }
}

impl TryFrom<String> for SandboxPath {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<SandboxPath> for String {
    fn from(value: SandboxPath) -> Self {
        value.to_string()
    }
}

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SANDBOX_ROOT)?;
        for c in &self.components {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// One path component: a file or directory name with no `/`, `\` or NUL, not `.` or `..`,
/// at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for FileName {
    type Error = PathError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::try_from(value.to_owned())
    }
}

impl TryFrom<String> for FileName {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() || value == "." || value == ".." {
            Err(PathError::DotOrEmpty)
        } else if value.contains('/') {
            Err(PathError::Slash)
        } else if value.contains('\\') {
            Err(PathError::Backslash)
        } else if value.contains('\0') {
            Err(PathError::Nul)
        } else if value.len() > MAX_NAME_BYTES {
            Err(PathError::TooLong)
        } else {
            Ok(Self(value))
        }
    }
}

impl From<FileName> for String {
    fn from(value: FileName) -> Self {
        value.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Result<String, PathError> {
        SandboxPath::try_from(s).map(|p| p.to_string())
    }

    #[test]
    fn normalises_slashes_and_dots() {
        assert_eq!(path("/sandbox"), Ok("/sandbox".into()));
        assert_eq!(path("/sandbox/"), Ok("/sandbox".into()));
        assert_eq!(path("//sandbox/./a//b/"), Ok("/sandbox/a/b".into()));
        assert_eq!(
            SandboxPath::try_from("/sandbox/a/b").unwrap().relative(),
            "a/b"
        );
        assert_eq!(SandboxPath::root().relative(), "");
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(path("/sandbox/../etc"), Err(PathError::ParentComponent));
        assert_eq!(
            path("/sandbox/a/../../etc"),
            Err(PathError::ParentComponent)
        );
        assert_eq!(path("/sandbox/a/.."), Err(PathError::ParentComponent));
        assert_eq!(path("/etc/passwd"), Err(PathError::NotUnderSandbox));
        assert_eq!(path("/sandboxes/x"), Err(PathError::NotUnderSandbox));
        assert_eq!(path("/"), Err(PathError::NotUnderSandbox));
        assert_eq!(path("sandbox/x"), Err(PathError::NotAbsolute));
        assert_eq!(path(""), Err(PathError::NotAbsolute));
        assert_eq!(path("/sandbox/a\0b"), Err(PathError::Nul));
        assert_eq!(path("/sandbox\\..\\etc"), Err(PathError::Backslash));
        assert_eq!(
            path(&format!("/sandbox/{}", "a".repeat(256))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn file_names() {
        assert!(FileName::try_from("data.csv").is_ok());
        assert!(FileName::try_from("..hidden").is_ok());
        assert_eq!(FileName::try_from("."), Err(PathError::DotOrEmpty));
        assert_eq!(FileName::try_from(".."), Err(PathError::DotOrEmpty));
        assert_eq!(FileName::try_from(""), Err(PathError::DotOrEmpty));
        assert_eq!(FileName::try_from("a/b"), Err(PathError::Slash));
        assert_eq!(FileName::try_from("a\\b"), Err(PathError::Backslash));
        assert_eq!(FileName::try_from("a\0"), Err(PathError::Nul));
    }

    #[test]
    fn join_split_and_serde() {
        let dir = SandboxPath::try_from("/sandbox/out").unwrap();
        let file = dir.join(&FileName::try_from("a.png").unwrap());
        assert_eq!(file.to_string(), "/sandbox/out/a.png");
        let (parent, name) = file.split_last().unwrap();
        assert_eq!((parent, name.as_str()), (dir, "a.png"));
        assert!(SandboxPath::root().split_last().is_none());
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json, "/sandbox/out/a.png");
        assert!(serde_json::from_value::<SandboxPath>("/sandbox/../x".into()).is_err());
    }
}
