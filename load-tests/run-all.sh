#!/usr/bin/env bash
# The full manual benchmark run behind README "Performance": starts a release `tether`
# in embedded mode (`tether serve`) and/or distributed mode (`tether api` + one
# `tether worker-host` on the local RabbitMQ and Redis), runs every scenario against it
# with the raw-kernel ceiling measured in the same invocation, and writes one JSON
# report per run (plus the text output) to OUT.
#
#   bash load-tests/run-all.sh [embedded|distributed|both] [OUT]
#
# Needs what `scripts/test.sh` installs: root, dockerd, the sandbox image and, for
# distributed mode, RabbitMQ and Redis (`bash scripts/install-deps.sh --services`).
# Env: REPEAT (single-user and saturation repetitions, default 3), PORT (default 3890), AMQP_URL,
# REDIS_URL. Never part of CI (it takes about 15 minutes per mode).
set -euo pipefail

MODES="${1:-both}"
OUT="${2:-load-tests/results/$(date -u +%Y-%m-%d)-run}"
REPEAT="${REPEAT:-3}"
PORT="${PORT:-3890}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
URL="http://127.0.0.1:$PORT"
TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK="$(mktemp -d /tmp/tether-run-all.XXXXXX)"
POOL=(--min-idle 25 --max-total 40)

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -j2 -p tether -p tether-bench
BIN="$CARGO_TARGET_DIR/release"
mkdir -p "$OUT"

PIDS=()
stop() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop; rm -rf "$WORK"' EXIT

# Wait until the service answers and its pool holds 25 idle sandboxes.
wait_ready() {
    local status idle
    for _ in $(seq 1 600); do
        status="$(curl -fsS -H "X-Auth-Token: $TOKEN" "$URL/api/v1/status" 2>/dev/null || true)"
        idle="$(grep -o '"idle_workers":[0-9]*' <<<"$status" | head -n1 | cut -d: -f2)"
        [[ -n "$idle" && "$idle" -ge 25 ]] && return 0
        sleep 1
    done
    echo "the service never became ready: $status" >&2
    return 1
}

start() {
    local mode="$1"
    export TETHER_AUTH_TOKEN="$TOKEN" TETHER_LOG=warn
    if [[ "$mode" == embedded ]]; then
        TETHER_DATA_DIR="$WORK/serve" TETHER_NODE_ID="bench-serve" \
            "$BIN/tether" serve --listen "127.0.0.1:$PORT" "${POOL[@]}" >"$WORK/serve.log" 2>&1 &
        PIDS+=($!)
    else
        local ns="bench-$$"
        export TETHER_AMQP_URL="$AMQP_URL" TETHER_REDIS_URL="$REDIS_URL" TETHER_NAMESPACE="$ns"
        export TETHER_INTERNAL_TOKEN="$TOKEN-internal-token"
        TETHER_DATA_DIR="$WORK/worker" "$BIN/tether" worker-host --node-id "bench-node" \
            "${POOL[@]}" --file-listen 127.0.0.1:0 >"$WORK/worker.log" 2>&1 &
        PIDS+=($!)
        TETHER_DATA_DIR="$WORK/api" "$BIN/tether" api --listen "127.0.0.1:$PORT" >"$WORK/api.log" 2>&1 &
        PIDS+=($!)
    fi
    wait_ready
}

bench() {
    local name="$1"
    shift
    echo "== $name"
    "$BIN/tether-bench" "$@" --url "$URL" --token "$TOKEN" --quiet \
        --json "$OUT/$name.json" | tee "$OUT/$name.txt"
}

for mode in embedded distributed; do
    [[ "$MODES" == both || "$MODES" == "$mode" ]] || continue
    start "$mode"
    bench "seed-$mode" seed --users 25 --requests 100 --mode "$mode"
    for i in $(seq 1 "$REPEAT"); do
        bench "single-user-$mode-$i" saturation --users 1 --requests 300 --rounds 5 --mode "$mode"
    done
    for i in $(seq 1 "$REPEAT"); do
        bench "saturation-$mode-$i" saturation --users 25 --requests 100 --rounds 3 --mode "$mode"
    done
    bench "cold-$mode" cold --sessions 10 --mode "$mode"
    stop
done
if [[ "$MODES" == both || "$MODES" == embedded ]]; then
    # The cold path without a pool: the engine in the bench process, warm pool then none.
    echo "== cold-in-process"
    "$BIN/tether-bench" cold --in-process --sessions 8 --quiet \
        --json "$OUT/cold-in-process.json" | tee "$OUT/cold-in-process.txt"
fi
echo "reports in $OUT"
