#!/usr/bin/env bash
# Build the container image with podman and check that it serves (not part of CI: needs
# root and podman, runc, debootstrap from apt; no Docker engine, no registry pulls).
#   1. a Debian base made locally with debootstrap + podman import (python3, venv, certs);
#   2. podman build --isolation chroot --pull=never, this machine's CA bundle handed in as
#      a build secret (never baked into the image or committed files);
#   3. podman run --network host; wait for /health/ready; not root; HEALTHCHECK passes;
#      podman stop sends SIGTERM and the server must exit cleanly within 10 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${BASE:-localhost/aiservice-base:bookworm}"
IMAGE="${IMAGE:-localhost/aiservice:smoke}"
PORT="${PORT:-18080}"
NAME="aiservice-smoke-$$"
CA="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
RUN_OPTS=(--runtime runc --cgroup-manager cgroupfs)

if ! podman image exists "$BASE"; then
  ROOTFS="$(mktemp -d)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOTFS" http://deb.debian.org/debian
  tar -C "$ROOTFS" -c . | podman import - "$BASE"
  rm -rf "$ROOTFS"
fi

podman build --isolation chroot --pull=never --network host --format docker \
  --build-arg PYTHON_IMAGE="$BASE" --secret id=cacert,src="$CA" \
  --target runtime -t "$IMAGE" "$ROOT"

podman "${RUN_OPTS[@]}" run -d --name "$NAME" --network host \
  --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
  --read-only --tmpfs /tmp \
  -e PORT="$PORT" -e AISERVICE_SERVER__HOST=127.0.0.1 "$IMAGE"
trap 'podman "${RUN_OPTS[@]}" rm -f "$NAME" >/dev/null 2>&1 || true' EXIT

for _ in $(seq 60); do
  if curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/health/ready"; echo
uid="$(podman "${RUN_OPTS[@]}" exec "$NAME" python -c 'import os; print(os.getuid())')"
[ "$uid" != 0 ] || { echo "container runs as root" >&2; exit 1; }
echo "runs as uid $uid"
# No systemd here to schedule the image's HEALTHCHECK (podman logs that): run it once.
podman "${RUN_OPTS[@]}" healthcheck run "$NAME" && echo "HEALTHCHECK passes"
start=$(date +%s)
podman "${RUN_OPTS[@]}" stop -t 10 "$NAME" >/dev/null
echo "stopped in $(( $(date +%s) - start )) s"
status="$(podman "${RUN_OPTS[@]}" inspect -f '{{.State.ExitCode}}' "$NAME")"
echo "exit code $status (0 or 143 = clean SIGTERM shutdown)"
[ "$status" = 0 ] || [ "$status" = 143 ]
echo "container smoke test passed: $IMAGE"
