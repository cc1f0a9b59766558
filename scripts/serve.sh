#!/usr/bin/env bash
# Quick start: install into .venv and run the service on embedded defaults
# (in-memory cache, the offline `fake` provider) at http://127.0.0.1:8080.
# Extra arguments go to `aiservice serve` (e.g. --port 9000, --config my.yaml).
set -euo pipefail
source "$(dirname "$0")/_venv.sh" server
exec aiservice serve "$@"
