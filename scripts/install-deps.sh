#!/usr/bin/env bash
# Install and start what Tether needs on a Debian/Ubuntu machine (run as root).
#
#   scripts/install-deps.sh             Docker engine (started), the sandbox image,
#                                       mkfs.ext4 / losetup / mount
#   scripts/install-deps.sh --services  also RabbitMQ (5672), Redis (6379) and an
#                                       S3-compatible server (moto, 127.0.0.1:9000)
#   --no-image                          skip building the sandbox image
#
# Every step is skipped when already satisfied and prints one status line;
# every wait is bounded. No systemd needed (services are started directly
# unless systemd is PID 1). Logs of started daemons: /var/log/tether-*.log.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
SERVICES=0
IMAGE=1
for arg in "$@"; do
    case "$arg" in
    --services) SERVICES=1 ;;
    --no-image) IMAGE=0 ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
MOTO_VENV=/opt/tether-moto
MOTO_SPEC='moto[server]>=5,<6'

status() { printf '[install-deps] %-9s %s\n' "$1" "$2"; }
die() {
    printf '[install-deps] ERROR: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { timeout 1 bash -c ">/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# wait_for SECONDS COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}
systemd_pid1() { [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; }
# Start a daemon detached from this script's session, output to a log file.
spawn() {
    local logfile="$1"
    shift
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
}

[[ "$(id -u)" == 0 ]] || die "run as root (it installs packages and starts daemons)"
have apt-get || die "apt-get not found: this script supports Debian/Ubuntu only"

# Python for the moto venv: one that has venv + ensurepip (Debian's needs python3-venv).
venv_python() {
    local py
    for py in /usr/bin/python3 "$(command -v python3 || true)"; do
        [[ -n "$py" && -x "$py" ]] || continue
        "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 && { echo "$py"; return 0; }
    done
    return 1
}
moto_ok() { "$MOTO_VENV/bin/python" -c 'import moto' >/dev/null 2>&1 && [[ -x "$MOTO_VENV/bin/moto_server" ]]; }

# ---------------------------------------------------------------- packages
pkgs=()
# docker.io's recommends that matter without systemd: cgroupfs-mount (mounts the
# cgroup v1 hierarchies dockerd needs) and apparmor (its parser, should the kernel
# have AppArmor on). The rest (needrestart, git, ...) is not wanted.
have dockerd || pkgs+=(docker.io cgroupfs-mount apparmor)
have docker || pkgs+=(docker.io)
have mkfs.ext4 || pkgs+=(e2fsprogs)
have losetup || pkgs+=(mount)
have mount || pkgs+=(mount)
have setsid || pkgs+=(util-linux)
have ps || pkgs+=(procps)
if [[ " ${pkgs[*]} " == *" docker.io "* ]] && ! have debootstrap; then
    # A new engine has no images and no registry is reachable: build.sh will
    # bootstrap the base image.
    pkgs+=(debootstrap)
fi
if ((SERVICES)); then
    have rabbitmq-server || pkgs+=(rabbitmq-server)
    have redis-server || pkgs+=(redis-server)
    have redis-cli || pkgs+=(redis-tools)
    if ! moto_ok && ! venv_python >/dev/null; then
        pkgs+=(python3 python3-venv)
    fi
fi
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk 'NF && !seen[$0]++')

if ((${#pkgs[@]})); then
    status packages "installing ${pkgs[*]} (apt)"
    # No init system to start services in containers: keep maintainer scripts
    # from trying (we start what we need below).
    created_policy=0
    if ! systemd_pid1 && [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt_log=/var/log/tether-apt.log
    ok=1
    timeout 600 apt-get update -qq >"$apt_log" 2>&1 || ok=0
    if ((ok)); then
        timeout 1500 apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${pkgs[@]}" >>"$apt_log" 2>&1 || ok=0
    fi
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((!ok)); then
        tail -n 25 "$apt_log" >&2
        die "apt-get failed installing ${pkgs[*]} (log: $apt_log)"
    fi
else
    status packages "all present"
fi

# ---------------------------------------------------------------- docker
if timeout 20 docker info >/dev/null 2>&1; then
    status docker "engine running ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
else
    if systemd_pid1; then
        systemctl start docker || true
        how="systemctl start docker"
    elif pgrep -x dockerd >/dev/null 2>&1; then
        how="dockerd already started, waiting"
    else
        # Without an init system nobody mounts the cgroup v1 hierarchies
        # (a cgroup2-only /sys/fs/cgroup needs nothing).
        if [[ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]] &&
            ! mountpoint -q /sys/fs/cgroup/devices 2>/dev/null; then
            have cgroupfs-mount || die "cgroups are not mounted and cgroupfs-mount is missing (apt-get install cgroupfs-mount)"
            cgroupfs-mount || die "cgroupfs-mount failed: dockerd cannot run without cgroups"
            status cgroups "mounted with cgroupfs-mount"
        fi
        spawn /var/log/dockerd.log dockerd
        how="started dockerd (log /var/log/dockerd.log)"
    fi
    if ! wait_for 90 timeout 10 docker info >/dev/null 2>&1; then
        tail -n 20 /var/log/dockerd.log >&2 2>/dev/null || true
        die "Docker engine did not answer 'docker info' within 90 s ($how)"
    fi
    status docker "engine running ($how)"
fi

# ---------------------------------------------------------------- image
if ((IMAGE)); then
    bash "$ROOT/worker-image/build.sh" || die "building the sandbox image failed"
    status image "${TETHER_IMAGE:-tether-sandbox:latest} ready"
fi

((SERVICES)) || exit 0

# ---------------------------------------------------------------- rabbitmq
if port_open 5672; then
    status rabbitmq "already answering on 5672"
else
    spawn /var/log/tether-rabbitmq.log rabbitmq-server -detached
    if ! wait_for 120 port_open 5672; then
        tail -n 20 /var/log/tether-rabbitmq.log /var/log/rabbitmq/*.log >&2 2>/dev/null || true
        die "RabbitMQ did not open port 5672 within 120 s"
    fi
    # The AMQP listener opens last in RabbitMQ's boot; confirm when possible.
    timeout 30 rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    status rabbitmq "started (rabbitmq-server -detached), answering on 5672"
fi

# ---------------------------------------------------------------- redis
redis_ok() { [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; }
if redis_ok; then
    status redis "already answering on 6379"
else
    port_open 6379 && die "port 6379 is taken by something that does not answer redis PING"
    redis-server --daemonize yes --save '' --appendonly no --port 6379 \
        --bind 127.0.0.1 --logfile /var/log/tether-redis.log --dir /tmp >/dev/null ||
        die "redis-server failed to start (log: /var/log/tether-redis.log)"
    wait_for 20 redis_ok || die "Redis did not answer PING on 6379 within 20 s (log: /var/log/tether-redis.log)"
    status redis "started, answering on 6379"
fi

# ---------------------------------------------------------------- s3 (moto)
if moto_ok; then
    status moto "installed in $MOTO_VENV"
else
    py="$(venv_python)" || die "no python3 with venv/ensurepip (python3-venv) found"
    rm -rf "$MOTO_VENV"
    timeout 300 "$py" -m venv "$MOTO_VENV" || die "python venv creation at $MOTO_VENV failed ($py)"
    if ! timeout 900 "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC" \
        >/var/log/tether-moto-pip.log 2>&1; then
        tail -n 20 /var/log/tether-moto-pip.log >&2
        die "pip install $MOTO_SPEC failed (log: /var/log/tether-moto-pip.log)"
    fi
    moto_ok || die "moto installed into $MOTO_VENV but does not import"
    status moto "installed $("$MOTO_VENV/bin/python" -c 'import moto; print("moto", moto.__version__)') into $MOTO_VENV"
fi
s3_ok() {
    "$MOTO_VENV/bin/python" - <<'PY' >/dev/null 2>&1
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:9000/", timeout=2) as r:
    assert r.status == 200 and b"ListAllMyBucketsResult" in r.read()
PY
}
if s3_ok; then
    status s3 "already answering on 127.0.0.1:9000"
else
    port_open 9000 && die "port 9000 is taken by something that does not answer S3 ListBuckets"
    spawn /var/log/tether-moto.log "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p 9000
    wait_for 60 s3_ok || {
        tail -n 20 /var/log/tether-moto.log >&2
        die "moto_server did not answer on 127.0.0.1:9000 within 60 s"
    }
    status s3 "started moto_server, answering on 127.0.0.1:9000"
fi
