# syntax=docker/dockerfile:1
# aiservice container image: Cloud Run, Kubernetes, docker-compose (target "runtime") and
# Lambda response streaming through the AWS Lambda Web Adapter (target "lambda-stream").
#   docker build --platform linux/amd64 --target runtime -t aiservice:latest .
ARG PYTHON_IMAGE=python:3.12-slim

# ---- build: wheels for aiservice and its dependencies (no compilers reach the runtime)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY . .
# A build behind a TLS-inspecting proxy can hand in its CA bundle as the optional secret
# "cacert" (podman/docker build --secret id=cacert,src=...); nothing is baked in.
RUN --mount=type=secret,id=cacert,target=/run/secrets/cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet ".[server,redis,aws,gcp]" \
 && mkdir -p /app/config \
 && cp adapters/*.py /app/ \
 && if [ -f aiservice.yaml ]; then cp aiservice.yaml /app/; fi \
 && if [ -d config ]; then cp config/*.yaml /app/config/ 2>/dev/null || true; fi

# ---- runtime: slim, non-root, read-only friendly
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8080'), timeout=2)"]
# cloud_run.py: uvicorn on 0.0.0.0:$PORT, graceful SIGTERM, proxy headers trusted.
CMD ["python", "/app/cloud_run.py"]

# ---- lambda-stream: the same server behind the AWS Lambda Web Adapter extension, for a
# Function URL with InvokeMode RESPONSE_STREAM (SSE reaches clients incrementally).
FROM runtime AS lambda-stream
COPY --from=public.ecr.aws/awsguru/aws-lambda-adapter:0.9.1 /lambda-adapter /opt/extensions/lambda-adapter
ENV AWS_LWA_INVOKE_MODE=response_stream \
    AWS_LWA_READINESS_CHECK_PATH=/health/live \
    AWS_LWA_PORT=8080
