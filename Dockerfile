# aiservice container image: Cloud Run, Kubernetes, docker-compose (target "runtime") and
# Lambda response streaming through the AWS Lambda Web Adapter (target "lambda-stream").
#   docker build --platform linux/amd64 --target runtime -t aiservice:latest .
# Plain Dockerfile syntax only: it builds with BuildKit, the classic builder (Cloud Build's
# default `docker build`) and podman/buildah alike. Reference: docs/deploy/container.md.
ARG BASE_IMAGE=python:3.12-slim

# ---- build: a virtualenv with aiservice and its dependencies (prebuilt wheels preferred;
# whatever a build needs stays in this stage)
FROM ${BASE_IMAGE} AS build
# Extras installed into the image; drop aws/gcp for a smaller image that never calls them.
ARG EXTRAS=server,redis,aws,gcp
# Optional, for builds behind a TLS-inspecting proxy or with a private index: a CA bundle
# path visible inside this stage (e.g. `podman build --volume HOST_CA:/run/build-ca.crt:ro`)
# and an index URL. Used by pip only; nothing of them reaches the runtime stage. (Separate
# names, because an empty PIP_CERT / PIP_INDEX_URL would be taken as a value by pip.)
ARG PIP_CERT_FILE=
ARG PYPI_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120
WORKDIR /src

# Dependencies first, listed from pyproject.toml alone: a source change reuses this layer.
COPY pyproject.toml ./
RUN if [ -n "$PIP_CERT_FILE" ]; then export PIP_CERT="$PIP_CERT_FILE"; fi \
 && if [ -n "$PYPI_INDEX_URL" ]; then export PIP_INDEX_URL="$PYPI_INDEX_URL"; fi \
 && python3 -m venv /opt/venv \
 && python3 -c 'import sys, tomllib; \
      project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
      extras = [e for e in sys.argv[1].split(",") if e]; \
      reqs = project["dependencies"]; \
      reqs += [r for e in extras for r in project["optional-dependencies"][e]]; \
      print("\n".join(r for r in reqs if not r.startswith("aiservice")))' \
      "$EXTRAS" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --quiet --prefer-binary -r /tmp/requirements.txt

# Then the package itself (its dependencies are all above) and, at the end, no pip.
COPY . .
RUN if [ -n "$PIP_CERT_FILE" ]; then export PIP_CERT="$PIP_CERT_FILE"; fi \
 && if [ -n "$PYPI_INDEX_URL" ]; then export PIP_INDEX_URL="$PYPI_INDEX_URL"; fi \
 && /opt/venv/bin/pip install --quiet --no-deps . \
 && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools

# /app: the adapters, the optional configuration (aiservice.yaml, config/*.yaml profiles) and
# the flows. `flows_dir` is resolved relative to the config file, /app/aiservice.yaml, so
# every relative flows_dir named by aiservice.yaml or a profile is copied to /app/<flows_dir>;
# ./flows always is (for AISERVICE_FLOWS_DIR=/app/flows without a config file).
# Then bytecode for everything, hash-checked so that copying between stages (new mtimes)
# keeps it valid: no compile work at cold start, nothing to write on a read-only filesystem.
RUN mkdir -p /app/config \
 && cp adapters/*.py /app/ \
 && if [ -f aiservice.yaml ]; then cp aiservice.yaml /app/; fi \
 && if [ -d config ]; then cp config/*.yaml /app/config/ 2>/dev/null || true; fi \
 && /opt/venv/bin/python -c 'import os, pathlib, shutil, yaml; \
      files = [pathlib.Path("aiservice.yaml"), *sorted(pathlib.Path("config").glob("*.yaml"))]; \
      named = {(yaml.safe_load(f.read_text()) or {}).get("flows_dir") \
               for f in files if f.is_file()}; \
      dirs = {os.path.normpath(str(d)) for d in named | {"flows"} if d}; \
      dirs = sorted(d for d in dirs \
                    if not os.path.isabs(d) and not d.startswith("..") and os.path.isdir(d)); \
      [shutil.copytree(d, os.path.join("/app", d), dirs_exist_ok=True) for d in dirs]; \
      print("flows copied to /app:", ", ".join(dirs) or "none")' \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/venv /app >/dev/null

# ---- runtime: the base image, the virtualenv and /app; non-root, read-only friendly
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="aiservice" \
      org.opencontainers.image.description="OpenAI-compatible LLM gateway, HTTP orchestrator and shared cache" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080
# The app user, and no pip in the runtime (the official python images ship one): the image
# runs code, it does not install any.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin app \
 && if python3 -m pip --version >/dev/null 2>&1; then \
      PIP_ROOT_USER_ACTION=ignore python3 -m pip uninstall --quiet --yes pip setuptools wheel; fi
COPY --from=build /opt/venv /opt/venv
# Owned by root and not writable by the app: the code and config cannot be changed at run time.
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8080'), timeout=2)"]
# cloud_run.py: uvicorn on 0.0.0.0:$PORT, graceful SIGTERM, proxy headers trusted. Exec form:
# Python is PID 1 and receives SIGTERM itself.
CMD ["python", "/app/cloud_run.py"]

# ---- lambda-stream: the same server behind the AWS Lambda Web Adapter extension, for a
# Function URL with InvokeMode RESPONSE_STREAM (SSE reaches clients incrementally).
FROM runtime AS lambda-stream
COPY --from=public.ecr.aws/awsguru/aws-lambda-adapter:0.9.1 /lambda-adapter /opt/extensions/lambda-adapter
ENV AWS_LWA_INVOKE_MODE=response_stream \
    AWS_LWA_READINESS_CHECK_PATH=/health/live \
    AWS_LWA_PORT=8080
