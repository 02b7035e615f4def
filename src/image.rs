//! Making sure the sandbox image exists: `worker-image/build.sh` is idempotent (seconds
//! when nothing changed) and bootstraps the base image where no registry is reachable.

use anyhow::{Context, bail};
use std::path::PathBuf;

/// The build script shipped with this source tree.
fn build_script() -> PathBuf {
    let from_env = std::env::var_os("TETHER_WORKER_IMAGE_DIR").map(PathBuf::from);
    from_env
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("worker-image"))
        .join("build.sh")
}

/// Build (or confirm) the sandbox image `image`.
pub async fn build(image: &str) -> anyhow::Result<()> {
    let script = build_script();
    if !script.exists() {
        bail!(
            "sandbox image {image} is missing and {} was not found; set TETHER_WORKER_IMAGE_DIR to the worker-image directory",
            script.display()
        );
    }
    tracing::info!(image, script = %script.display(), "building the sandbox image (first time takes a few minutes)");
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .env("TETHER_IMAGE", image)
        .status()
        .await
        .context("running the image build script")?;
    if !status.success() {
        bail!("sandbox image build failed ({status})");
    }
    Ok(())
}

/// Whether the local Docker engine has `image`.
pub async fn present(image: &str) -> bool {
    tokio::process::Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
