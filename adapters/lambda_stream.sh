#!/bin/sh
# Lambda entry point of the streaming function: the AWS Lambda Web Adapter layer
# (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this script, waits for the server on $PORT
# and forwards invocations to it, streaming responses (AWS_LWA_INVOKE_MODE=response_stream).
# The package holds uvicorn for it (scripts/build-lambda-package.sh); boto3 comes from the
# runtime's own site-packages (Python 3.11+ runtimes), on python3's default path.
PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}${PYTHONPATH:+:$PYTHONPATH}" \
  exec python3 "${LAMBDA_TASK_ROOT}/adapters/cloud_run.py"
