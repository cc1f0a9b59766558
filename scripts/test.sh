#!/usr/bin/env bash
# Install everything into .venv, make sure a Redis answers on 127.0.0.1:6379, then run
# the quality gates: ruff, mypy (strict, src/) and pytest. Arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" dev
cd "$ROOT"

redis_answers() {
  (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
}
if ! redis_answers; then
  if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/aiservice-redis.log
  for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
fi
# promtool (Debian package "prometheus") checks the shipped alert rules.
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# Serverless Framework v3 for the serverless.yml test (pinned by tools/serverless/
# package-lock.json; reinstalled only when the lock file changes).
if command -v npm >/dev/null; then
  SLS_STAMP="tools/serverless/node_modules/.stamp-$(sha256sum tools/serverless/package-lock.json | cut -c1-16)"
  if [ ! -f "$SLS_STAMP" ]; then
    npm ci --prefix tools/serverless --no-audit --no-fund --loglevel=error
    touch "$SLS_STAMP"
  fi
fi

# One command per line: under set -e a failure inside an && list does not stop the script.
echo "== ruff"
ruff check .
ruff format --check --quiet src tests bench
echo "== mypy"; mypy
echo "== pytest"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing the run" >&2
  exit 1
fi
exit "$status"
