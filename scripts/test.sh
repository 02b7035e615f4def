#!/usr/bin/env bash
# The project's test command (run as root on Debian/Ubuntu; CI runs it via .ci/run):
# installs and starts everything the tests need (Docker engine, sandbox image,
# RabbitMQ, Redis, an S3-compatible server), smoke-tests the sandbox image,
# then cargo fmt --check, clippy with warnings denied, and the workspace tests.
#
# Env: TETHER_IMAGE (default tether-sandbox:latest); the TETHER_TEST_* URLs below
# may be preset to point the tests elsewhere. TETHER_SKIP_IMAGE_CHECK=1 skips
# scripts/check-image.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$ROOT"

step() { printf '\n[test.sh] === %s\n' "$*"; }
die() {
    printf '[test.sh] FAILED: %s\n' "$*" >&2
    exit 1
}

step "dependencies and services (scripts/install-deps.sh --services)"
bash scripts/install-deps.sh --services || die "scripts/install-deps.sh --services"

export TETHER_IMAGE="${TETHER_IMAGE:-tether-sandbox:latest}"
export TETHER_TEST_AMQP_URL="${TETHER_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export TETHER_TEST_REDIS_URL="${TETHER_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export TETHER_TEST_S3_ENDPOINT="${TETHER_TEST_S3_ENDPOINT:-http://127.0.0.1:9000}"
# moto accepts any credentials; S3 clients refuse to sign without some.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-tether-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-tether-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Build artefacts live outside the checkout by default, so repeated runs (and fresh
# clones on the same machine) reuse them; a new machine simply builds from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/tether/cargo-target}"
export TETHER_TEST_DATA_DIR="${TETHER_TEST_DATA_DIR:-/tmp/tether-test}"

# Tests name their nodes t-…; a test that panics mid-way cannot clean up after itself,
# so sweep their containers, disks and loop devices before and after the run.
sweep_test_leftovers() {
    docker ps -aq --filter label=org.tether.node 2>/dev/null | while read -r id; do
        node="$(docker inspect -f '{{index .Config.Labels "org.tether.node"}}' "$id" 2>/dev/null || true)"
        [[ "$node" == t-* ]] && docker rm -f "$id" >/dev/null 2>&1 || true
    done
    if [[ -d "$TETHER_TEST_DATA_DIR" ]]; then
        awk -v root="$TETHER_TEST_DATA_DIR" 'index($5, root) == 1 {print $5}' /proc/self/mountinfo |
            sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
        losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v root="$TETHER_TEST_DATA_DIR" 'index($2, root) == 1 {print $1}' |
            while read -r dev; do losetup -d "$dev" 2>/dev/null || true; done
        rm -rf "$TETHER_TEST_DATA_DIR"
    fi
}

if [[ "${TETHER_SKIP_IMAGE_CHECK:-0}" != 1 ]]; then
    step "sandbox image smoke test (scripts/check-image.sh)"
    bash scripts/check-image.sh || die "scripts/check-image.sh"
fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
[[ -f Cargo.toml ]] || die "no Cargo.toml in $ROOT: nothing to test"

step "cargo fmt --all --check"
fmt_out="$(mktemp)"
if ! cargo fmt --all --check >"$fmt_out" 2>&1; then
    # The full diff can run to thousands of lines: show its start and the files.
    head -n 80 "$fmt_out"
    echo "[test.sh] files that cargo fmt would change:"
    sed -n 's/^Diff in \(.*\):[0-9]*:$/  \1/p' "$fmt_out" | sort -u
    rm -f "$fmt_out"
    die "cargo fmt --all --check (run: cargo fmt --all)"
fi
rm -f "$fmt_out"

step "cargo clippy --workspace --all-targets -j2 -- -D warnings"
cargo clippy --workspace --all-targets -j2 -- -D warnings || die "cargo clippy"

step "cargo test --workspace -j2"
sweep_test_leftovers
trap sweep_test_leftovers EXIT
cargo test --workspace -j2 || die "cargo test"

step "benchmark smoke (tether-bench --smoke against a real tether serve; no thresholds)"
bench_smoke() {
    local dir port log pid url token
    dir="$TETHER_TEST_DATA_DIR/bench-smoke"
    mkdir -p "$dir"
    log="$dir/serve.log"
    token="bench-smoke-$$"
    cargo build -j2 -p tether -p tether-bench >/dev/null 2>&1 || cargo build -j2 -p tether -p tether-bench
    TETHER_AUTH_TOKEN="$token" TETHER_LISTEN=127.0.0.1:0 TETHER_DATA_DIR="$dir/data" \
        TETHER_NODE_ID="t-bench-$$" TETHER_MIN_IDLE=2 TETHER_MAX_TOTAL=6 TETHER_DISK_MIB=64 \
        "$CARGO_TARGET_DIR/debug/tether" serve >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        url="$(sed -n 's/^Tether is listening on //p' "$log")"
        [[ -n "$url" ]] && curl -fsS "$url/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    [[ -n "$url" ]] || { cat "$log"; kill "$pid"; return 1; }
    local bench="$CARGO_TARGET_DIR/debug/tether-bench" rc=0
    "$bench" seed --smoke --url "$url" --token "$token" 2>&1 | tail -n 25 || rc=1
    "$bench" ceiling --smoke 2>&1 | tail -n 12 || rc=1
    kill -TERM "$pid"; wait "$pid" || true
    return $rc
}
bench_smoke || die "benchmark smoke"

step "all passed"
