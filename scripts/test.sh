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

echo "== ruff"; ruff check . && ruff format --check --quiet src tests
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
