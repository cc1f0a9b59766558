#!/usr/bin/env bash
# Run Mangum 0.22.0's own published test suite against aiservice's Lambda bridge.
#
# The sdist comes from PyPI (pinned by hash); only its `from mangum import Mangum` lines are
# rewritten to `from aiservice.platforms import Mangum`. Everything else the tests import
# from `mangum.*` (types, exceptions, the event translators they test directly) stays
# Mangum's own, taken from the sdist so the run does not depend on the installed version.
# The tests' extra dependencies (Quart, Brotli...) go into a cached venv that sees the
# project's environment through a .pth file, so that environment is never modified.
#
# Deselected below, each with the documented deliberate difference it exercises
# (docs/deploy/lambda.md, "Deliberate differences"). Any other failure fails this script.
#
# Usage: scripts/mangum-suite.sh [pytest args]   (PYTHON: the project's interpreter;
# MANGUM_SUITE_DIR: cache directory, default .build/mangum-suite)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The project's environment (scripts/_venv.sh), unless PYTHON names another interpreter.
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
WORK="${MANGUM_SUITE_DIR:-$ROOT/.build/mangum-suite}"
VERSION="0.22.0"
SDIST_SHA256="701936891aaed8ed66479b871c2bda87ba288fd01c7d5dd6ba6c8e9ba1c239d1"
# What Mangum's tests import besides Mangum, pytest and Starlette (pinned: known-good).
TEST_DEPS=(quart==0.22.0 brotli==1.2.1 brotli-asgi==1.7.0 httpx2==2.16.2)

DESELECT=(
  # [environment] They create a real Lambda in LocalStack (Docker) from a zip of Mangum's
  # own package: they cannot run here and would not exercise this bridge anyway.
  tests/handlers/test_api_gateway.py::test_aws_api_gateway_real_lambda_get
  tests/handlers/test_api_gateway.py::test_aws_api_gateway_real_lambda_post
  tests/handlers/test_http_gateway.py::test_aws_http_gateway_real_lambda_get
  tests/handlers/test_http_gateway.py::test_aws_http_gateway_real_lambda_post
  # [lifespan once per environment] They expect the app's shutdown (or its failure) at the
  # end of each invocation; here it runs when Lambda retires the environment (SIGTERM).
  "tests/test_lifespan.py::test_lifespan[mock_aws_api_gateway_event0-auto]"
  "tests/test_lifespan.py::test_lifespan[mock_aws_api_gateway_event1-on]"
  "tests/test_lifespan.py::test_lifespan_failure[mock_aws_api_gateway_event2-auto-shutdown]"
  "tests/test_lifespan.py::test_lifespan_failure[mock_aws_api_gateway_event3-on-shutdown]"
  "tests/test_lifespan.py::test_lifespan_state[mock_aws_api_gateway_event0-auto]"
  "tests/test_lifespan.py::test_lifespan_state[mock_aws_api_gateway_event1-on]"
  "tests/test_lifespan.py::test_starlette_lifespan[mock_aws_api_gateway_event0]"
  "tests/test_lifespan.py::test_quart_lifespan[mock_aws_api_gateway_event0]"
  # [lifespan="on" is strict] Mangum serves an app whose lifespan is unsupported or whose
  # startup raised even with lifespan="on"; here "on" fails the invocation.
  "tests/test_lifespan.py::test_lifespan_unsupported[mock_aws_api_gateway_event1-on]"
  "tests/test_lifespan.py::test_lifespan_error[mock_aws_api_gateway_event1-on]"
  # [JSON error envelope] The 500 for a failed app is {"error": {...}} as application/json,
  # not "Internal Server Error" as text/plain (the status is 500 in both).
  "tests/test_http.py::test_http_exception_mid_response[mock_aws_api_gateway_event0]"
  "tests/test_http.py::test_http_cycle_state[mock_aws_api_gateway_event0]"
  # [NDJSON is text] The default text_mime_types add application/x-ndjson to Mangum's.
  tests/test_adapter.py::test_default_settings
)

mkdir -p "$WORK/dist"
sdist="$WORK/dist/mangum-$VERSION.tar.gz"
if [ ! -f "$sdist" ] || ! echo "$SDIST_SHA256  $sdist" | sha256sum --check --status; then
  rm -f "$sdist"
  "$PYTHON" -m pip download --quiet --no-binary :all: --no-deps "mangum==$VERSION" \
    --dest "$WORK/dist"
  echo "$SDIST_SHA256  $sdist" | sha256sum --check --status \
    || { echo "mangum-$VERSION.tar.gz does not match its pinned sha256" >&2; exit 1; }
fi

suite="$WORK/mangum-$VERSION"
rm -rf "$suite"
tar -xzf "$sdist" -C "$WORK"
[ -d "$suite/tests" ] || { echo "the mangum-$VERSION sdist has no tests/" >&2; exit 1; }

# The one change: which Mangum the tests construct.
mapfile -t rewritten < <(grep -rlx 'from mangum import Mangum' "$suite/tests" --include='*.py')
sed -i 's/^from mangum import Mangum$/from aiservice.platforms import Mangum/' "${rewritten[@]}"
if grep -rq '^from mangum import Mangum' "$suite/tests"; then
  echo "an import of mangum.Mangum was left unrewritten" >&2
  exit 1
fi
echo "mangum-suite: Mangum $VERSION tests, ${#rewritten[@]} files now import aiservice.platforms.Mangum"

venv="$WORK/venv"
stamp="$venv/.deps-$(printf '%s\n' "$("$PYTHON" -c 'import sys; print(sys.prefix)')" "${TEST_DEPS[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # The project's environment (aiservice's dependencies, Mangum, Starlette, pytest) is
  # visible to the venv; pip installs only what it lacks.
  "$PYTHON" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' \
    | sort -u >"$site/project-env.pth"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${TEST_DEPS[@]}"
  touch "$stamp"
fi

cd "$suite"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
# Mangum's suite needs no plugin; the project's (pytest-asyncio...) would reconfigure it.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1

# A stale entry would silently deselect nothing: every one must name a collected test.
collected="$("$venv/bin/python" -m pytest --collect-only -q -p no:cacheprovider tests 2>&1)" \
  || { printf '%s\n' "$collected" >&2; echo "mangum-suite: collection failed" >&2; exit 1; }
for id in "${DESELECT[@]}"; do
  grep -qxF "$id" <<<"$collected" || { echo "deselected test not found: $id" >&2; exit 1; }
done

args=()
for id in "${DESELECT[@]}"; do args+=(--deselect "$id"); done
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "${args[@]}" "$@" tests
