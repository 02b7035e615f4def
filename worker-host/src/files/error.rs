//! What can go wrong moving files in and out of a session disk, and the stable code each
//! failure reports.

use std::fmt;
use tether_protocol::ErrorCode;

/// A file operation that failed. Messages name sandbox paths and redacted URLs only (never
/// host paths, query strings or file contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    /// A directory (or other non-file) where a file was expected, or the reverse.
    #[error("{path} is {what}")]
    WrongKind { path: String, what: &'static str },
    /// A link, FIFO, socket, device or hard-linked file: never followed or read.
    #[error("{path} is refused: {reason}")]
    Unsafe { path: String, reason: &'static str },
    #[error("{path} exceeds the {limit}-byte file size limit")]
    TooLarge { path: String, limit: u64 },
    #[error("the session disk is full (writing {path})")]
    DiskFull { path: String },
    /// The egress policy refused the URL.
    #[error("{url}: {detail}")]
    EgressDenied { url: String, detail: String },
    /// The remote side failed: HTTP status, connection, S3 error.
    #[error("{url}: {detail}")]
    Remote { url: String, detail: String },
    #[error(
        "s3:// transfers are not configured on this node (set TETHER_S3_ACCESS_KEY_ID and TETHER_S3_SECRET_ACCESS_KEY)"
    )]
    S3NotConfigured,
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
}

impl FileError {
    /// The stable error code clients branch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            FileError::NotFound { .. } => ErrorCode::FileNotFound,
            FileError::WrongKind { .. } => ErrorCode::InvalidRequest,
            FileError::Unsafe { .. } => ErrorCode::UnsafePath,
            FileError::TooLarge { .. } => ErrorCode::FileTooLarge,
            FileError::DiskFull { .. } => ErrorCode::DiskFull,
            FileError::EgressDenied { .. } => ErrorCode::EgressDenied,
            FileError::Remote { .. } => ErrorCode::TransferFailed,
            FileError::S3NotConfigured => ErrorCode::InvalidRequest,
            FileError::Io { .. } => ErrorCode::Internal,
        }
    }

    /// Map a system call error on `path`.
    pub fn from_errno(path: impl fmt::Display, errno: rustix::io::Errno) -> Self {
        use rustix::io::Errno;
        let path = path.to_string();
        match errno {
            Errno::NOENT => FileError::NotFound { path },
            // RESOLVE_NO_SYMLINKS and O_NOFOLLOW both report a link as ELOOP.
            Errno::LOOP => FileError::Unsafe {
                path,
                reason: "the path goes through a symbolic link",
            },
            Errno::XDEV => FileError::Unsafe {
                path,
                reason: "the path leaves the session disk",
            },
            Errno::NXIO | Errno::ACCESS | Errno::PERM => FileError::Unsafe {
                path,
                reason: "not a regular file",
            },
            Errno::NOTDIR => FileError::WrongKind {
                path,
                what: "not a directory (or has a non-directory in its path)",
            },
            Errno::ISDIR | Errno::NOTEMPTY => FileError::WrongKind {
                path,
                what: "a directory",
            },
            Errno::NOSPC | Errno::DQUOT => FileError::DiskFull { path },
            Errno::NAMETOOLONG => FileError::WrongKind {
                path,
                what: "too long a name",
            },
            other => FileError::Io {
                path,
                detail: std::io::Error::from(other).to_string(),
            },
        }
    }

    /// Map an I/O error on `path` (file content reads and writes).
    pub fn from_io(path: impl fmt::Display, error: &std::io::Error) -> Self {
        match error.raw_os_error() {
            Some(raw) => Self::from_errno(path, rustix::io::Errno::from_raw_os_error(raw)),
            None => FileError::Io {
                path: path.to_string(),
                detail: error.to_string(),
            },
        }
    }
}

/// A file operation's failure and, for batch jobs, the entry it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFailure {
    /// The entry of a batch (`None` for single-path operations).
    pub index: Option<usize>,
    pub error: FileError,
}

impl FileFailure {
    /// A failure of batch entry `index`.
    pub fn at(index: usize, error: FileError) -> Self {
        Self {
            index: Some(index),
            error,
        }
    }
}

impl From<FileError> for FileFailure {
    fn from(error: FileError) -> Self {
        Self { index: None, error }
    }
}

impl fmt::Display for FileFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "files[{i}]: {}", self.error),
            None => self.error.fmt(f),
        }
    }
}

impl std::error::Error for FileFailure {}
