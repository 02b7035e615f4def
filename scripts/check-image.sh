#!/usr/bin/env bash
# Smoke test of the sandbox image ($TETHER_IMAGE, default tether-sandbox:latest),
# run the way the worker-host runs it: hardened flags, no network, read-only
# root, a connection file with transport "ipc" in a bind-mounted directory.
#
#  1. the kernel's IPC sockets appear in the host directory;
#  2. a Jupyter client in a second (also network-less) container drives the
#     kernel over those sockets: state survives between executes, a matplotlib
#     figure with a Chinese title comes back as image/png with nothing on stderr;
#  3. one-shot checks: imports, user, read-only root, locked root account.
# Needs only bash and docker. Exit status 0 = all checks passed.
set -euo pipefail

IMAGE="${TETHER_IMAGE:-tether-sandbox:latest}"
# shellcheck disable=SC2054  # commas belong to the --tmpfs option value
HARDEN=(--network none --read-only --tmpfs /tmp:size=64m,uid=1000,gid=1000
    --cap-drop ALL --security-opt no-new-privileges --pids-limit 128
    -m 512m --memory-swap 512m --cpus 1 --user 1000:1000)

log() { printf '[check-image] %s\n' "$*"; }
die() { printf '[check-image] FAIL: %s\n' "$*" >&2; exit 1; }

docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found (run worker-image/build.sh)"

work="$(mktemp -d /tmp/tether-check.XXXXXX)"
name="tether-check-$$"
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

conn="$work/conn"
mkdir -p "$conn"
key="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
cat >"$conn/kernel.json" <<EOF
{
  "transport": "ipc",
  "ip": "/run/tether/k",
  "shell_port": 1,
  "iopub_port": 2,
  "stdin_port": 3,
  "control_port": 4,
  "hb_port": 5,
  "key": "$key",
  "signature_scheme": "hmac-sha256",
  "kernel_name": "python3"
}
EOF
chown -R 1000:1000 "$conn"
chmod 700 "$conn"

# --- 1. kernel container, sockets on the host side
t0=$(date +%s%N)
docker run -d --name "$name" "${HARDEN[@]}" \
    --tmpfs /sandbox:size=64m,uid=1000,gid=1000 \
    -v "$conn:/run/tether" "$IMAGE" >/dev/null
for _ in $(seq 1 300); do
    all=1
    for p in 1 2 3 4 5; do [[ -S "$conn/k-$p" ]] || all=0; done
    ((all)) && break
    sleep 0.05
done
((all)) || { docker logs "$name" >&2 || true; die "IPC sockets $conn/k-{1..5} did not appear within 15 s"; }
log "IPC sockets k-1..k-5 present $((($(date +%s%N) - t0) / 1000000)) ms after docker run"

# --- 2. drive the kernel over IPC from a second network-less container
docker run --rm -i "${HARDEN[@]}" -e MPLBACKEND=Agg -v "$conn:/run/tether" \
    --entrypoint python3 "$IMAGE" - <<'PY' || { docker logs "$name" >&2 || true; die "kernel round trip failed"; }
import time
from jupyter_client import BlockingKernelClient

kc = BlockingKernelClient(connection_file="/run/tether/kernel.json")
kc.load_connection_file()
kc.start_channels()
t = time.monotonic()
kc.wait_for_ready(timeout=30)
print("[check-image] kernel ready (kernel_info reply) after %.0f ms of waiting" % ((time.monotonic() - t) * 1000))

def run(code, timeout=60):
    outputs = []
    def hook(msg):
        if msg["msg_type"] in ("stream", "execute_result", "display_data", "error"):
            outputs.append((msg["msg_type"], msg["content"]))
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook, stop_on_error=False)
    assert reply["content"]["status"] == "ok", (code, reply["content"], outputs)
    return outputs

run("x = 41")
out = run("x + 1")
assert out == [("execute_result", out[0][1])] and out[0][1]["data"]["text/plain"] == "42", out

t = time.monotonic()
out = run("""
import numpy, pandas, scipy, sklearn, sympy, PIL, openpyxl
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([-1, 0, 2])
ax.set_title("中文标题 -1")
""")
kinds = [k for k, _ in out]
assert "display_data" in kinds, out
assert any("image/png" in c.get("data", {}) for k, c in out if k == "display_data"), out
assert not [c for k, c in out if k == "stream" and c["name"] == "stderr"], out
assert "error" not in kinds, out
print("[check-image] imports + Chinese plot returned image/png in %.0f ms, stderr empty"
      % ((time.monotonic() - t) * 1000))

out = run("import os; print(os.getuid(), os.getcwd(), os.environ['MPLBACKEND'])")
assert out[0][1]["text"].split() == ["1000", "/sandbox", "module://matplotlib_inline.backend_inline"], out

# Code written for Windows asks for SimHei: still renders, one warning line only.
out = run("plt.rcParams['font.sans-serif'] = ['SimHei']\nplt.figure(); plt.title('中文'); plt.plot([1, 2])")
err = [c["text"] for k, c in out if k == "stream" and c["name"] == "stderr"]
assert len("".join(err).splitlines()) == 1 and "SimHei" in err[0], err
assert any("image/png" in c.get("data", {}) for k, c in out if k == "display_data"), out

t = time.monotonic()
for _ in range(50):
    run("1")
print("[check-image] 50 trivial executes: %.1f ms each" % ((time.monotonic() - t) * 20))

# interrupt_request on the control channel (what the timeout ladder sends first)
# stop_on_error=False, as the worker-host sends: with True, ipykernel aborts the next
# request that arrives shortly after the KeyboardInterrupt.
msg_id = kc.execute("import time; time.sleep(30)", stop_on_error=False)
time.sleep(0.5)
t = time.monotonic()
kc.control_channel.send(kc.session.msg("interrupt_request", {}))
reply = kc.get_shell_msg(timeout=10)
assert reply["parent_header"]["msg_id"] == msg_id, reply
assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
assert run("x")[0][1]["data"]["text/plain"] == "41"  # state survived the interrupt
print("[check-image] interrupt_request stopped a sleep in %.0f ms; state kept"
      % ((time.monotonic() - t) * 1000))
kc.stop_channels()
PY

# --- 3. one-shot checks in the hardened form
docker run --rm "${HARDEN[@]}" --entrypoint bash "$IMAGE" -c '
set -e
[ "$(whoami)" = sandbox ] || { echo "whoami: $(whoami)"; exit 1; }
[ "$(id -u):$(id -g)" = 1000:1000 ]
[ "$(pwd)" = /sandbox ]
if touch /etc/tether-probe 2>/dev/null; then echo "/etc is writable"; exit 1; fi
if command -v sudo >/dev/null; then echo "sudo is installed"; exit 1; fi
python3 - <<PY
import warnings
warnings.simplefilter("error")
import numpy, pandas, scipy, scipy.optimize, sklearn, sklearn.linear_model, sympy, PIL.Image, openpyxl
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.set_title("销售额（万元）")
ax.plot([-3, 1])
fig.savefig("/tmp/zh.png")
with open("/tmp/zh.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
wb = openpyxl.Workbook(); wb.active["A1"] = "中文"; wb.save("/tmp/a.xlsx")
assert pandas.read_excel("/tmp/a.xlsx", header=None).iloc[0, 0] == "中文"
assert str(sympy.integrate(sympy.Symbol("x") ** 2)) == "x**3/3"
PY
' || die "one-shot checks failed"
# The root account must be locked ("L" in passwd -S); readable only as root.
status="$(docker run --rm --user 0 --entrypoint passwd "$IMAGE" -S root | awk '{print $2}')"
[[ "$status" == L ]] || die "root account not locked (passwd -S root: $status)"
log "imports, Chinese PNG, xlsx round trip, whoami=sandbox, read-only /etc, no sudo, root locked: ok"
log "all checks passed for $IMAGE"
