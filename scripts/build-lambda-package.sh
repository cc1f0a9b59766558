#!/usr/bin/env bash
# Build .build/lambda.zip, the package serverless.yml deploys: aiservice[aws] with its
# dependencies as Linux x86_64 wheels for Python 3.12, the adapters and the config files
# (aiservice.yaml, config/*.yaml) when present. Tests and dev files never enter it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/.build"
STAGE="$BUILD/lambda"
rm -rf "$STAGE" "$BUILD/wheel" "$BUILD/lambda.zip"
mkdir -p "$STAGE/adapters"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$BUILD/wheel" "$ROOT"
python3 -m pip install --quiet --target "$STAGE" \
  --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
  --only-binary=:all: "$(ls "$BUILD"/wheel/aiservice-*.whl | head -1)[aws]"
cp "$ROOT"/adapters/*.py "$ROOT"/adapters/*.sh "$STAGE/adapters/"
[ -f "$ROOT/aiservice.yaml" ] && cp "$ROOT/aiservice.yaml" "$STAGE/"
[ -d "$ROOT/config" ] && mkdir -p "$STAGE/config" && cp "$ROOT"/config/*.yaml "$STAGE/config/"
# Lambda cannot write bytecode (read-only /var/task): ship it, compiled by Python 3.12
# (pip compiled with this interpreter, whose .pyc files the 3.12 runtime would ignore).
find "$STAGE" -name '__pycache__' -type d -prune -exec rm -rf {} +
if python3.12 -c "" 2>/dev/null; then
  python3.12 -m compileall -q "$STAGE"
else
  echo "warning: no python3.12 here; the package has no bytecode (slower cold starts)" >&2
fi
(cd "$STAGE" && python3 -m zipfile -c "$BUILD/lambda.zip" .)
du -sh "$BUILD/lambda.zip"
