#!/usr/bin/env bash
# Build the Tether sandbox image ($TETHER_IMAGE, default tether-sandbox:latest).
#
# Works where no container registry can be reached: when debian:bookworm-slim
# is missing and cannot be pulled, it is bootstrapped with debootstrap from the
# Debian mirror and imported. Idempotent: the image carries the label
# org.tether.image-hash=<sha256 of this directory's build inputs>; when an image
# with the current hash exists, nothing is built.
#
# Env: TETHER_IMAGE         image name (default tether-sandbox:latest)
#      TETHER_DEBIAN_MIRROR mirror for debootstrap (default http://deb.debian.org/debian)
#      TETHER_ROOTFS_DIR    debootstrap directory (default /var/cache/tether/rootfs)
#      TETHER_BUILD_NETWORK --network for docker build (default: docker's default)
#      TETHER_FORCE_BUILD=1 rebuild even when the hash matches
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

IMAGE="${TETHER_IMAGE:-tether-sandbox:latest}"
BASE="debian:bookworm-slim"
MIRROR="${TETHER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS_DIR="${TETHER_ROOTFS_DIR:-/var/cache/tether/rootfs}"
LABEL="org.tether.image-hash"
LOG_DIR="${TMPDIR:-/tmp}"

log() { printf '[build.sh] %s\n' "$*" >&2; }
die() { printf '[build.sh] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 ||
    die "no docker client on PATH (scripts/install-deps.sh installs docker.io)"
timeout 30 docker info >/dev/null 2>&1 ||
    die "cannot reach the Docker engine ('docker info' failed); start dockerd (scripts/install-deps.sh does)"

# --- hash of the build inputs (the docker build context minus .dockerignore'd docs/script)
image_hash() {
    find . -type f ! -name build.sh ! -name '*.md' -print0 |
        LC_ALL=C sort -z |
        xargs -0 sha256sum |
        sha256sum | cut -d' ' -f1
}
HASH="$(image_hash)"
SHORT="${HASH:0:12}"

# One build at a time on this machine (tests, `tether serve` and install-deps may
# all ask at once); a waiter then finds the image built by the first.
LOCK="$LOG_DIR/tether-image-build.lock"
exec 9>>"$LOCK"
if ! flock -n 9; then
    log "another build holds $LOCK; waiting (up to 40 min)"
    flock -w 2400 9 || die "timed out waiting for $LOCK"
fi

if [[ "${TETHER_FORCE_BUILD:-0}" != 1 ]]; then
    current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
    if [[ "$current" == "$HASH" ]]; then
        log "$IMAGE is up to date (image-hash $SHORT); nothing to build"
        exit 0
    fi
    same="$(docker images --quiet --filter "label=$LABEL=$HASH" | head -n1)"
    if [[ -n "$same" ]]; then
        docker tag "$same" "$IMAGE"
        log "tagged existing image $same (image-hash $SHORT) as $IMAGE; nothing to build"
        exit 0
    fi
fi

# --- base image
bootstrap_base() {
    [[ "$(id -u)" == 0 ]] || die "bootstrapping $BASE needs root (debootstrap)"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local pkgs=()
    command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
    [[ -f "$keyring" ]] || pkgs+=(debian-archive-keyring)
    if ((${#pkgs[@]})); then
        log "installing ${pkgs[*]} (apt)"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get update -qq >/dev/null ||
            die "apt-get update failed"
        timeout 900 apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
            die "apt-get install ${pkgs[*]} failed"
    fi
    local marker="$ROOTFS_DIR.complete"
    if [[ -f "$marker" && -x "$ROOTFS_DIR/usr/bin/apt-get" ]]; then
        log "reusing bootstrapped rootfs $ROOTFS_DIR"
    else
        local dlog="$LOG_DIR/tether-debootstrap.log"
        log "debootstrap --variant=minbase bookworm $ROOTFS_DIR $MIRROR (about a minute; log: $dlog)"
        rm -rf "$ROOTFS_DIR" "$marker"
        mkdir -p "$ROOTFS_DIR"
        if ! timeout 1200 debootstrap --variant=minbase --keyring="$keyring" \
            bookworm "$ROOTFS_DIR" "$MIRROR" >"$dlog" 2>&1; then
            tail -n 20 "$dlog" >&2 || true
            die "debootstrap failed (full log: $dlog)"
        fi
        # Trim it like the official -slim image: the downloaded .debs and package
        # lists (~80 MB) and docs, man pages and translations (~45 MB).
        rm -rf "$ROOTFS_DIR"/var/cache/apt/archives/*.deb \
            "$ROOTFS_DIR"/var/cache/apt/*.bin \
            "$ROOTFS_DIR"/var/lib/apt/lists/* \
            "$ROOTFS_DIR"/var/log/bootstrap.log \
            "$ROOTFS_DIR"/usr/share/man/* \
            "$ROOTFS_DIR"/usr/share/info/* \
            "$ROOTFS_DIR"/usr/share/lintian/*
        find "$ROOTFS_DIR/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$ROOTFS_DIR/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
        find "$ROOTFS_DIR/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
            -exec rm -rf {} +
        mkdir -p "$ROOTFS_DIR/var/lib/apt/lists/partial"
        touch "$marker"
    fi
    log "importing $ROOTFS_DIR as $BASE"
    tar --numeric-owner -C "$ROOTFS_DIR" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            - "$BASE" >/dev/null ||
        die "docker import of $ROOTFS_DIR failed"
}

if docker image inspect "$BASE" >/dev/null 2>&1; then
    :
elif timeout 120 docker pull --quiet "$BASE" >/dev/null 2>&1; then
    log "pulled $BASE"
else
    log "$BASE is not present and cannot be pulled; bootstrapping it"
    bootstrap_base
fi

# --- build
# Without the buildx plugin, newer docker CLIs need the legacy builder asked for.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
net=()
[[ -n "${TETHER_BUILD_NETWORK:-}" ]] && net=(--network "$TETHER_BUILD_NETWORK")

blog="$LOG_DIR/tether-image-build.log"
log "building $IMAGE (image-hash $SHORT; takes minutes on a cold cache; log: $blog)"
start=$SECONDS
set +e
timeout 2400 docker build --force-rm "${net[@]}" --label "$LABEL=$HASH" -t "$IMAGE" . >"$blog" 2>&1
rc=$?
set -e
if ((rc != 0)); then
    tail -n 40 "$blog" >&2 || true
    ((rc == 124)) && die "docker build timed out after 40 min (log: $blog)"
    die "docker build failed with exit code $rc (log: $blog)"
fi

# Old builds of this image that lost their tag; images still used by containers are kept.
docker image prune --force --filter "label=$LABEL" >/dev/null 2>&1 || true

size="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
log "built $IMAGE in $((SECONDS - start)) s, $((size / 1000000)) MB (image-hash $SHORT)"
