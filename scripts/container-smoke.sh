#!/usr/bin/env bash
# Build the container image and check that it serves, the way Cloud Run / Kubernetes run it.
# Runs in CI (.ci/run) and by hand; needs root on Debian/Ubuntu with apt, no Docker engine and
# no container registry (docs/deploy/container.md):
#   1. installs podman, runc and curl when missing (mmdebstrap, else debootstrap, only when
#      a base must be made);
#   2. base image: $BASE_IMAGE if present or pullable, else a local Debian + python3 base made
#      with mmdebstrap/debootstrap and kept as $LOCAL_BASE (made once, reused by later runs);
#   3. podman build (chroot isolation, host network), the host CA bundle handed to pip;
#   4. podman run --network host --read-only on a free loopback port, then checks:
#      /health/live 200, /health/ready 200, a chat completion on the `fake` model (official
#      openai SDK when the project venv has it, else curl), a streamed one, the server runs
#      as a non-root user, bytecode present, no compiler or pip in the image, HEALTHCHECK,
#      SIGTERM stops it with exit code 0 within the grace period; prints the image size.
# Every step has a timeout; the container is removed on exit. Environment overrides:
#   IMAGE BASE_IMAGE LOCAL_BASE DEBIAN_SUITE DEBIAN_MIRROR EXTRAS GRACE SMOKE_PYTHON
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-localhost/aiservice:smoke}"
BASE_IMAGE="${BASE_IMAGE:-docker.io/library/python:3.12-slim}"
LOCAL_BASE="${LOCAL_BASE:-localhost/debian-base:bookworm}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"    # bookworm's python3 is 3.11 (>= 3.11 required)
EXTRAS="${EXTRAS:-server,redis,aws,gcp}"
GRACE="${GRACE:-10}"                        # seconds podman stop waits before SIGKILL
NAME="aiservice-smoke-$$"
T0=$SECONDS

log() { printf '== %s (%ss)\n' "$*" "$((SECONDS - T0))"; }
fail() { printf 'container smoke FAILED: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || fail "run as root (rootful podman, apt-get, debootstrap)"; }

apt_install() {  # apt_install PKG...: install the missing ones; non-zero if that fails
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null || return 1
  log "apt-get install ${missing[*]}" >&2
  timeout 300 apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
}

debian_mirror() {  # the host's Debian mirror (deb822 or one-line sources), else the default
  local uri
  uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 || true)"
  echo "${uri:-http://deb.debian.org/debian}" | tr -d ' '
}

rootfs_tar() {  # rootfs_tar OUT MIRROR: Debian $DEBIAN_SUITE + python3 as a tarball
  local out="$1" mirror="$2" pkgs=python3,python3-venv,ca-certificates,passwd dir
  local merged=/usr/share/mmdebstrap/hooks/merged-usr hooks=()
  if apt_install mmdebstrap; then
    # mmdebstrap (apt's parallel downloads, writes the tarball itself) is several times
    # faster than debootstrap. /usr merged with symlinks as debootstrap does it (else the
    # usrmerge package pulls in perl); no Recommends, docs, man pages or translations.
    [ -d "$merged" ] && hooks=(--hook-dir="$merged")
    timeout 1200 mmdebstrap --variant=essential --include="$pkgs" "${hooks[@]}" \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      "$DEBIAN_SUITE" "$out" "$mirror" >"$out.log" 2>&1 \
      || { tail -n 20 "$out.log"; return 1; }
    return
  fi
  apt_install debootstrap || return 1
  dir="$(mktemp -d /var/tmp/aiservice-rootfs.XXXXXX)"
  timeout 1200 debootstrap --variant=minbase --include="$pkgs" "$DEBIAN_SUITE" "$dir" "$mirror" \
    >"$out.log" 2>&1 || { tail -n 20 "$out.log"; rm -rf "$dir"; return 1; }
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/usr/share/man/* \
    "$dir"/usr/share/locale/* "$dir"/var/log/*
  timeout 600 tar -C "$dir" -cf "$out" .
  rm -rf "$dir"
}

make_local_base() {
  local work mirror minor
  mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
  work="$(mktemp -d /var/tmp/aiservice-base.XXXXXX)"
  log "local base: Debian $DEBIAN_SUITE + python3 from $mirror"
  rootfs_tar "$work/rootfs.tar" "$mirror" || { rm -rf "$work"; fail "building the Debian base"; }
  minor="$(tar -tf "$work/rootfs.tar" | grep -oE '^\./usr/bin/python3\.[0-9]+$' | head -n1 \
    | cut -d. -f3 || true)"
  [ "${minor:-0}" -ge 11 ] || { rm -rf "$work"; fail "$DEBIAN_SUITE has no python3 >= 3.11"; }
  timeout 600 podman import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
    "$work/rootfs.tar" "$LOCAL_BASE" >/dev/null
  rm -rf "$work"
}

choose_base() {  # prints the base image to build on
  local image
  # Images already here first (no registry round trip on warm runs), then a pull.
  for image in "$BASE_IMAGE" "$LOCAL_BASE"; do
    timeout 30 podman image exists "$image" && { echo "$image"; return; }
  done
  if timeout 120 podman pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "$BASE_IMAGE"; return
  fi
  echo "cannot pull $BASE_IMAGE: building $LOCAL_BASE" >&2
  make_local_base >&2
  echo "$LOCAL_BASE"
}

free_port() {  # a TCP port nothing listens on at 127.0.0.1
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  fail "no free port found"
}

need_root
# runc rather than podman's default crun: crun refuses hosts with hybrid cgroups (v1 + v2),
# which VMs and CI runners without systemd often have; runc runs on both.
apt_install podman runc curl ca-certificates || fail "cannot install podman runc curl"
# One image build at a time on this machine (shared CPU, shared podman storage).
exec 9>/var/lock/aiservice-container-smoke.lock
timeout 1800 flock 9 || fail "another container smoke run holds the lock for 30 min"

log "base image"
BASE="$(choose_base)"
echo "base: $BASE"

build_args=(--build-arg "BASE_IMAGE=$BASE" --build-arg "EXTRAS=$EXTRAS")
CA="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
if [ -s "$CA" ]; then
  # The host's CA bundle (a TLS-inspecting proxy's CA included) for pip only; it is mounted
  # into the build stage, never copied into a layer.
  build_args+=(--volume "$CA:/run/build-ca.crt:ro" --build-arg PIP_CERT_FILE=/run/build-ca.crt)
fi
log "podman build $IMAGE"
previous="$(timeout 30 podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
timeout 1800 podman build --isolation chroot --network host --pull=never --format docker \
  "${build_args[@]}" --target runtime -t "$IMAGE" "$ROOT"
BUILT=$((SECONDS - T0))
# The image this build replaced (now untagged) would otherwise pile up run after run.
current="$(timeout 30 podman image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  timeout 60 podman rmi "$previous" >/dev/null 2>&1 || true
fi

# Without systemd podman cannot schedule the HEALTHCHECK timer and says so on every
# container command; the check itself is run explicitly below, so that noise is dropped.
ctr() {  # ctr TIMEOUT PODMAN-ARGS...
  local limit="$1"; shift
  timeout "$limit" podman --runtime runc --cgroup-manager cgroupfs "$@" \
    2> >(grep -v 'systemd connection' >&2)
}
# podman's default limits (1M open files) exceed what an unprivileged host grants: stay
# within the host's hard limits.
nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
nproc="$(ulimit -Hu)"; { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
cleanup() { ctr 60 rm -f -t 0 "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
log "podman run on $URL"
RUN_AT=$SECONDS
ctr 60 run -d --name "$NAME" --network host --read-only --tmpfs /tmp \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
  -e PORT="$PORT" -e AISERVICE_SERVER__HOST=127.0.0.1 "$IMAGE" >/dev/null

show_logs() { ctr 30 logs --tail 40 "$NAME" >&2 || true; }
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL$1" || true; }
for _ in $(seq 120); do
  [ "$(status_of /health/live)" = 200 ] && break
  [ "$(ctr 10 inspect -f '{{.State.Running}}' "$NAME")" = true ] \
    || { show_logs; fail "the container exited during startup"; }
  sleep 0.5
done
STARTED=$((SECONDS - RUN_AT))
[ "$(status_of /health/live)" = 200 ] || { show_logs; fail "/health/live is not 200 after 60 s"; }
echo "/health/live 200"
ready="$(curl -s --max-time 10 -w '\n%{http_code}' "$URL/health/ready")"
[ "${ready##*$'\n'}" = 200 ] || { show_logs; fail "/health/ready: $ready"; }
echo "/health/ready 200 ${ready%$'\n'*}"

log "chat completion on the fake model"
PROMPT="container smoke $$"
PY="${SMOKE_PYTHON:-${AISERVICE_VENV:-$ROOT/.venv}/bin/python}"
if [ -x "$PY" ] && timeout 60 "$PY" -c 'import openai' 2>/dev/null; then
  reply="$(timeout 60 "$PY" - "$URL/v1" "$PROMPT" <<'EOF'
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused", timeout=10, max_retries=0)
messages = [{"role": "user", "content": sys.argv[2]}]
resp = client.chat.completions.create(model="fake", messages=messages)
print(resp.choices[0].message.content)
EOF
)"
  via="openai SDK"
else
  reply="$(curl -sS --fail-with-body --max-time 10 "$URL/v1/chat/completions" \
    -H 'Content-Type: application/json' \
    -d "{\"model\": \"fake\", \"messages\": [{\"role\": \"user\", \"content\": \"$PROMPT\"}]}")"
  via="curl"
fi
[[ "$reply" == *"$PROMPT"* ]] || fail "chat completion ($via) did not echo the prompt: $reply"
echo "chat completion ($via) echoes the prompt"
stream="$(curl -sS -N --fail-with-body --max-time 10 "$URL/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model": "fake", "stream": true, "messages": [{"role": "user", "content": "one two"}]}')"
[[ "$stream" == *"chat.completion.chunk"*two*"data: [DONE]"* ]] || fail "stream: $stream"
echo "streamed chat completion ends with [DONE]"

log "image contents"
in_ctr() { ctr 60 exec "$NAME" "$@"; }
uid="$(in_ctr grep '^Uid:' /proc/1/status | awk '{print $2}' || true)"
[ -n "$uid" ] && [ "$uid" != 0 ] || fail "the server process runs as uid '${uid}'"
echo "server process (PID 1) runs as uid $uid"
# shellcheck disable=SC2016  # expanded inside the container
in_ctr sh -c 'ls /opt/venv/lib/python3*/site-packages/aiservice/__pycache__/app.*.pyc' \
  >/dev/null || fail "no bytecode for aiservice in the image"
echo "bytecode compiled"
tools="$(in_ctr sh -c 'for t in gcc cc c++ make ld pip pip3; do command -v "$t"; done; \
  ls /opt/venv/bin/pip* 2>/dev/null' || true)"
[ -z "$tools" ] || fail "build tools left in the image: $tools"
echo "no compiler, make or pip in the image"
ctr 30 healthcheck run "$NAME" >/dev/null || fail "HEALTHCHECK"
echo "HEALTHCHECK passes"

log "SIGTERM"
stop_start="$(date +%s%N)"
ctr $((GRACE + 30)) stop -t "$GRACE" "$NAME" >/dev/null
stopped_ms=$((($(date +%s%N) - stop_start) / 1000000))
code="$(ctr 30 inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$code" = 0 ] || { show_logs; fail "exit code $code after SIGTERM (want 0)"; }
[ "$stopped_ms" -lt $((GRACE * 1000)) ] || fail "stopping took ${stopped_ms} ms (grace ${GRACE} s)"
echo "stopped by SIGTERM in ${stopped_ms} ms with exit code 0"

size="$(timeout 30 podman image inspect -f '{{.Size}}' "$IMAGE")"
base_size="$(timeout 30 podman image inspect -f '{{.Size}}' "$BASE")"
printf 'image %s: %d MB (base %s: %d MB)\n' "$IMAGE" $((size / 1000000)) "$BASE" \
  $((base_size / 1000000))
printf 'timings: base + build %ss, container start to /health/live %ss, total %ss\n' \
  "$BUILT" "$STARTED" "$((SECONDS - T0))"
echo "container smoke test passed: $IMAGE"
