#!/usr/bin/env bash
# Build .build/lambda.zip, the package serverless.yml deploys: aiservice[aws] (and the
# extras serverless.yml's custom.packageExtras names: redis, xray, qdrant, as the
# configuration uses them) with its dependencies as Linux x86_64 wheels for the runtime
# serverless.yml names (rendered from deploy.lambda_runtime), bytecode compiled by that
# same Python version, the adapters, the config files (aiservice.yaml, config/*.yaml) and
# the flows folder (flows_dir).
#
# * The streaming function (adapters/lambda_stream.sh) runs a uvicorn server: when
#   serverless.yml has it, uvicorn is packaged too.
# * boto3/botocore (and their own dependencies) are left out: every Lambda Python runtime
#   provides them. BUNDLE_BOTO3=1 keeps the versions pyproject.toml resolves instead.
# * PYTHON=/path/to/python3.X picks the compiling interpreter (default: python3.X on PATH,
#   or python3 when it is that version). Without one the build fails: a package without
#   matching bytecode compiles every module on each cold start (read-only /var/task).
# Tests and dev files never enter the package.
set -euo pipefail
ROOT="${PROJECT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
BUILD="$ROOT/.build"
STAGE="$BUILD/lambda"
SLS="$ROOT/serverless.yml"

RUNTIME="$(sed -n 's/^  runtime: python\([0-9.]*\)$/\1/p' "$SLS" | head -1)"
[ -n "$RUNTIME" ] || { echo "error: no 'runtime: python3.X' in $SLS" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
  if command -v "python$RUNTIME" >/dev/null; then PYTHON="python$RUNTIME"; else PYTHON=python3; fi
fi
HAVE="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$HAVE" != "$RUNTIME" ]; then
  echo "error: serverless.yml deploys python$RUNTIME but $PYTHON is $HAVE: install" \
    "python$RUNTIME (or PYTHON=...), or set deploy.lambda_runtime: python$HAVE and re-render" >&2
  exit 1
fi

# The aiservice extras the configuration needs (a Redis cache, tracing, Qdrant), rendered
# into serverless.yml as custom.packageExtras; aws alone when it is absent.
EXTRAS="$(sed -n "s/^  packageExtras: *['\"]\{0,1\}\([a-z,]*\)['\"]\{0,1\}$/\1/p" "$SLS" | head -1)"
EXTRAS="${EXTRAS:-aws}"

EXTRA=()
if grep -q 'handler: adapters/lambda_stream.sh' "$SLS"; then
  EXTRA+=("uvicorn>=0.30")
fi

rm -rf "$STAGE" "$BUILD/wheel" "$BUILD/lambda.zip"
mkdir -p "$STAGE/adapters"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$BUILD/wheel" "$ROOT"
"$PYTHON" -m pip install --quiet --target "$STAGE" --no-compile \
  --platform manylinux2014_x86_64 --implementation cp --python-version "$RUNTIME" \
  --only-binary=:all: "$(ls "$BUILD"/wheel/aiservice-*.whl | head -1)[$EXTRAS]" "${EXTRA[@]}"
if [ "${BUNDLE_BOTO3:-0}" != 1 ]; then
  # What the runtime ships (boto3, botocore and the packages only they use).
  for pkg in boto3 botocore s3transfer jmespath dateutil python_dateutil six urllib3; do
    rm -rf "$STAGE/$pkg" "$STAGE"/"$pkg"-*.dist-info "$STAGE/$pkg.py"
  done
fi
rm -rf "$STAGE/bin"
cp "$ROOT"/adapters/*.py "$ROOT"/adapters/*.sh "$STAGE/adapters/"
[ -f "$ROOT/aiservice.yaml" ] && cp "$ROOT/aiservice.yaml" "$STAGE/"
[ -d "$ROOT/config" ] && mkdir -p "$STAGE/config" && cp "$ROOT"/config/*.yaml "$STAGE/config/"
# flows_dir (rendered into serverless.yml as custom.flowsDir) beside aiservice.yaml, where
# the app resolves a relative one.
FLOWS="$(sed -n "s/^  flowsDir: *['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\}$/\1/p" "$SLS" | head -1)"
if [ -n "$FLOWS" ]; then
  [ -d "$ROOT/$FLOWS" ] || { echo "error: flows_dir $FLOWS is not a folder in $ROOT" >&2; exit 1; }
  mkdir -p "$STAGE/$FLOWS" && cp -r "$ROOT/$FLOWS/." "$STAGE/$FLOWS/"
fi
# Lambda cannot write bytecode (read-only /var/task): ship it, for the runtime's version.
# Hash-based and unchecked: a zip keeps mtimes to 2 s only, so timestamp-checked .pyc files
# would not match their sources once unpacked, and the package never changes in place.
find "$STAGE" -name '__pycache__' -type d -prune -exec rm -rf {} +
"$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$STAGE" >/dev/null
(cd "$STAGE" && "$PYTHON" -m zipfile -c "$BUILD/lambda.zip" .)
du -sh "$BUILD/lambda.zip"
