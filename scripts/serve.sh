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
    cat >&2 <<'MSG'
[serve.sh] cargo was not found. Tether needs a recent Rust toolchain (edition 2024,
Rust >= 1.90); Debian's cargo package is too old. Install it with rustup
(https://rustup.rs):

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"

then run scripts/serve.sh again.
MSG
    exit 1
fi

echo "[serve.sh] cargo build --release -j2 --bin tether"
cargo build --release -j2 --bin tether

export TETHER_IMAGE="${TETHER_IMAGE:-tether-sandbox:latest}"
exec "$ROOT/target/release/tether" serve "$@"
