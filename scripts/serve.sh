#!/usr/bin/env bash
# Run a complete single Tether node (README command 1): installs and starts the
# Docker engine and builds the sandbox image if needed, builds the tether binary,
# then runs `tether serve` with any arguments given here. Run as root.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$ROOT"

bash scripts/install-deps.sh

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    # Debian's cargo package is too old (the workspace uses edition 2024, Rust >= 1.90):
    # install the current stable toolchain with rustup, minimal profile.
    echo "[serve.sh] cargo not found: installing Rust (rustup, minimal profile)"
    command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl ca-certificates >/dev/null; }
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq build-essential >/dev/null; }

echo "[serve.sh] cargo build --release -j2 --bin tether"
cargo build --release -j2 --bin tether

export TETHER_IMAGE="${TETHER_IMAGE:-tether-sandbox:latest}"
exec "$ROOT/target/release/tether" serve "$@"
