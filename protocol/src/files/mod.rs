//! File jobs and direct file transfer: paths inside a session, outside locations,
//! request entries (seed shapes) and what comes back.
//!
//! - [`path`]: `SandboxPath` and `FileName`, the only ways a path enters the system.
//! - [`location`]: `http(s)://` and `s3://` sources and targets.
//! - [`request`]: wire items → validated `ImportSpec`/`ExportSpec`/`DeleteSpec`.
//! - [`result`]: per-entry results and directory listings.

pub mod location;
pub mod path;
pub mod request;
pub mod result;

pub use location::{LocationError, RemoteLocation};
pub use path::{FileName, PathError, SANDBOX_ROOT, SandboxPath};
pub use request::{
    DeleteFile, DeleteItem, DeleteSpec, ExportFile, ExportItem, ExportSpec, FilesRequestError,
    ImportFile, ImportItem, ImportSpec, MAX_FILES_PER_REQUEST, UploadMethod,
};
pub use result::{DeletedFile, DirEntry, DirListing, EntryKind, ExportedFile, ImportedFile};
