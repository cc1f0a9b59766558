#!/usr/bin/env bash
# Rendered by `aiservice render --target function` from the aiservice configuration.
# Change the config (deploy: section, secret references) and re-render; do not edit.
# Run from the repository root.
set -euo pipefail
# Cloud Functions builds main.py + requirements.txt: stage them with the aiservice wheel.
SRC=.build/function
rm -rf "$SRC" && mkdir -p "$SRC"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$SRC" .
cp adapters/gcp_functions.py "$SRC/main.py"
[ -f aiservice.yaml ] && cp aiservice.yaml "$SRC/"
[ -d config ] && cp -r config "$SRC/"
echo "./$(cd "$SRC" && ls aiservice-*.whl)[gcp]" > "$SRC/requirements.txt"

gcloud functions deploy aiservice \
  --gen2 \
  --runtime=python312 \
  --region=us-central1 \
  --project=my-project \
  --source="$SRC" \
  --entry-point=handle \
  --trigger-http \
  --no-allow-unauthenticated \
  --memory=1024Mi \
  --cpu=1 \
  --timeout=540s \
  --concurrency=80 \
  --min-instances=0 \
  --max-instances=10 \
  --env-vars-file=gcp/function.env.yaml
