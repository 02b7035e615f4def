//! Secrets that are generated once and kept in the data directory (0600), unless the
//! operator supplies one through the environment. The auth token lives here; issue 5's
//! webhook secret uses the same function.

use crate::config::{AuthToken, ConfigError};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the auth token inside the data directory.
pub const AUTH_TOKEN_FILE: &str = "auth_token";
/// File name of the webhook signing secret inside the data directory.
pub const WEBHOOK_SECRET_FILE: &str = "webhook_secret";

/// Where a secret came from, so the binary can say so at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Supplied through the environment (e.g. `TETHER_AUTH_TOKEN`); nothing was written.
    Environment,
    /// Read from a file written by an earlier start.
    File(PathBuf),
    /// Generated now and written to this file (0600).
    Generated(PathBuf),
}

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write secret file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("secret file {0} is empty")]
    Empty(PathBuf),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// The auth token: `from_env` if set and non-empty, else `data_dir/auth_token`, created
/// with a fresh random token (256 bits, hex) on first start.
pub fn load_or_create_token(
    from_env: Option<&str>,
    data_dir: &Path,
) -> Result<(AuthToken, SecretSource), SecretError> {
    let (secret, source) = load_or_create_secret(from_env, &data_dir.join(AUTH_TOKEN_FILE))?;
    Ok((AuthToken::new(secret)?, source))
}

/// A secret: `from_env` if set and non-empty, else the content of `path`, which is
/// created (with its directory) holding a random 256-bit hex secret if absent. Two
/// processes starting at once end up with the same secret: the file appears atomically.
pub fn load_or_create_secret(
    from_env: Option<&str>,
    path: &Path,
) -> Result<(String, SecretSource), SecretError> {
    load_or_create_secret_with(from_env, path, random_hex_secret)
}

/// [`load_or_create_secret`] with the form of a generated secret chosen by the caller
/// (the webhook secret is generated in the Standard Webhooks `whsec_` form).
pub fn load_or_create_secret_with(
    from_env: Option<&str>,
    path: &Path,
    generate: impl FnOnce() -> String,
) -> Result<(String, SecretSource), SecretError> {
    if let Some(secret) = from_env.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok((secret.to_owned(), SecretSource::Environment));
    }
    let io_err = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    match read_secret(path) {
        Ok(secret) => return Ok((secret?, SecretSource::File(path.to_owned()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let secret = generate();
    match create_exclusively(path, &secret) {
        Ok(()) => Ok((secret, SecretSource::Generated(path.to_owned()))),
        // Another process won the race: use its secret.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let secret = read_secret(path).map_err(io_err)??;
            Ok((secret, SecretSource::File(path.to_owned())))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Read a secret file, tightening its permissions to 0600 if they were looser.
fn read_secret(path: &Path) -> io::Result<Result<String, SecretError>> {
    let text = fs::read_to_string(path)?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "secret file was readable by others; setting 0600");
        fs::set_permissions(path, Permissions::from_mode(0o600))?;
    }
    let secret = text.trim();
    if secret.is_empty() {
        return Ok(Err(SecretError::Empty(path.to_owned())));
    }
    Ok(Ok(secret.to_owned()))
}

/// Write `secret` to a private temporary file, then link it into place, which fails if
/// the file exists: readers never see a half-written secret.
fn create_exclusively(path: &Path, secret: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    written
}

fn random_hex_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, source) = load_or_create_token(None, &data).unwrap();
        let path = data.join(AUTH_TOKEN_FILE);
        assert_eq!(source, SecretSource::Generated(path.clone()));
        assert_eq!(first.expose_secret().len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let (again, source) = load_or_create_token(Some(""), &data).unwrap();
        assert_eq!(source, SecretSource::File(path));
        assert_eq!(again.expose_secret(), first.expose_secret());
    }

    #[test]
    fn environment_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (token, source) = load_or_create_token(Some("from-env"), dir.path()).unwrap();
        assert_eq!(source, SecretSource::Environment);
        assert_eq!(token.expose_secret(), "from-env");
        assert!(!dir.path().join(AUTH_TOKEN_FILE).exists());
    }

    #[test]
    fn loose_permissions_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUTH_TOKEN_FILE);
        fs::write(&path, "abc\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let (token, _) = load_or_create_token(None, dir.path()).unwrap();
        assert_eq!(token.expose_secret(), "abc");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
