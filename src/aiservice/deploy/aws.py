"""``serverless.yml`` (Serverless Framework v3) for AWS Lambda.

Functions: ``api`` (HTTP API -> :mod:`adapters.aws_lambda`), ``worker`` (SQS queue with a
dead-letter queue, partial batch failures) and, optionally, ``stream`` (the container entry
point behind the AWS Lambda Web Adapter with a ``RESPONSE_STREAM`` Function URL, so SSE
streams reach clients incrementally; the package then holds uvicorn). Shared state lives in
one DynamoDB table (partition key ``pk``, TTL attribute ``expires_at``). The role may touch
that table, that queue and exactly the secrets the configuration and its flows reference.

``custom.flowsDir`` tells scripts/build-lambda-package.sh which folder to package,
``custom.packageExtras`` which aiservice extras beyond ``aws`` the configuration needs
(:mod:`aiservice.deploy.extras`), and ``provider.runtime`` which Python to build wheels
and bytecode for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..secrets.aws import parse_sm_name
from .bindings import Binding, bindings, runtime_note
from .common import HEALTH_LIVE, app_env, container_port, dump, flows_dir, header
from .extras import package_extras
from .tracing import LOCAL_COLLECTOR, otlp_env, uses_otlp

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["render_lambda"]

# The AWS Lambda Web Adapter layer (x86_64) published by awslabs/aws-lambda-web-adapter.
LWA_LAYER = "arn:aws:lambda:${aws:region}:753240598075:layer:LambdaAdapterLayerX86:25"
HANDLER = "adapters/aws_lambda.handler"
# SnapStart applies to published versions. For a function with `snapStart: true`,
# Serverless v3 publishes a version, adds an alias named "snapstart" pointing at it and
# points the function's events (HTTP API integration, SQS mapping, their permissions) at
# that alias, so every invocation is served from the snapshot. Only the Python handler's
# functions: `stream` runs a uvicorn server behind the Web Adapter, whose listening socket
# and extension the snapshot hooks know nothing about.
SNAPSTART_FUNCTIONS = ("api", "worker")
ARTIFACT = ".build/lambda.zip"


def _arn(service: str, resource: str) -> dict[str, Any]:
    # Fn::Join with pseudo parameters: ${aws:accountId} would make `serverless package`
    # call STS, and packaging must work offline.
    parts = [f"arn:aws:{service}:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]
    return {"Fn::Join": ["", [*parts, f":{resource}"]]}


def _secret_arn(binding: Binding) -> Any:
    """The exact ARN an ``aws-sm`` / ``aws-ssm`` reference reads, else ``None``."""
    name = binding.ref.name
    if binding.ref.scheme == "aws-sm":
        secret_id = parse_sm_name(name).secret_id
        if secret_id.startswith("arn:"):
            return secret_id
        # Secrets Manager appends "-" and 6 random characters to a secret's ARN.
        return _arn("secretsmanager", f"secret:{secret_id}-??????")
    if binding.ref.scheme == "aws-ssm":
        if name.startswith("arn:"):
            return name
        return _arn("ssm", f"parameter/{name.lstrip('/')}")
    return None


def _iam(settings: Settings, items: list[Binding]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": {"Fn::GetAtt": ["StateTable", "Arn"]},
        },
        {
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::GetAtt": ["WorkQueue", "Arn"]},
        },
    ]
    by_scheme = {"aws-sm": "secretsmanager:GetSecretValue", "aws-ssm": "ssm:GetParameter"}
    for scheme, action in by_scheme.items():
        arns: list[Any] = []
        for b in items:
            arn = _secret_arn(b) if b.ref.scheme == scheme else None
            if arn is not None and arn not in arns:
                arns.append(arn)
        if arns:
            statements.append({"Effect": "Allow", "Action": [action], "Resource": arns})
    return statements


def _environment(settings: Settings, items: list[Binding]) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if settings.cache.backend == "memory":  # Lambda instances share nothing in memory
        env["AISERVICE_CACHE__BACKEND"] = "dynamodb"
        env["AISERVICE_CACHE__TABLE"] = {"Ref": "StateTable"}
    env.update(_queue_env(settings))
    env.update(app_env(settings, **otlp_env(settings, LOCAL_COLLECTOR)))
    for b in items:
        if b.env_var:  # secret://env/X: an SSM SecureString, resolved at deploy time
            env[b.env_var] = f"${{ssm:/${{self:service}}/${{sls:stage}}/{b.env_var}}}"
    return env


def _queue_env(settings: Settings) -> dict[str, Any]:
    """``orchestrator.queue`` on the rendered SQS queue (the ``worker`` function consumes
    it), in the ``queue`` form, not the deprecated ``queue_url``. A configured
    ``queue.sqs.url`` is kept; another backend chosen in the file (Lambda would not consume
    it) is left alone, as ``queue_url`` did."""
    from ..config.queues import effective_queue

    queue = effective_queue(settings.orchestrator)
    if queue.backend not in ("inprocess", "sqs"):
        return {}
    env: dict[str, Any] = {"AISERVICE_ORCHESTRATOR__QUEUE__BACKEND": "sqs"}
    if not queue.sqs.url:
        env["AISERVICE_ORCHESTRATOR__QUEUE__SQS__URL"] = {"Ref": "WorkQueue"}
    return env


def _functions(settings: Settings) -> dict[str, Any]:
    d = settings.deploy
    functions: dict[str, Any] = {
        "api": {
            "handler": HANDLER,
            "description": "HTTP API: the whole aiservice app",
            "timeout": d.api_timeout_seconds,
            "events": [{"httpApi": "*"}],
        },
        "worker": {
            "handler": HANDLER,
            "description": "Async executions and other queue messages",
            "timeout": min(d.timeout_seconds, 900),
            "events": [
                {
                    "sqs": {
                        "arn": {"Fn::GetAtt": ["WorkQueue", "Arn"]},
                        "batchSize": 5,
                        "functionResponseType": "ReportBatchItemFailures",
                    }
                }
            ],
        },
    }
    schedules = _schedules(settings)
    if schedules:
        functions["worker"]["events"].extend(schedules)
    if d.lambda_snapstart:
        for name in SNAPSTART_FUNCTIONS:
            functions[name]["snapStart"] = True
    if d.lambda_streaming:
        functions["stream"] = {
            "handler": "adapters/lambda_stream.sh",
            "description": "Streaming responses (SSE) through the Lambda Web Adapter",
            "layers": [LWA_LAYER],
            "timeout": min(d.timeout_seconds, 900),
            "url": {"invokeMode": "RESPONSE_STREAM"},
            "environment": {
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
                "AWS_LWA_INVOKE_MODE": "response_stream",
                "AWS_LWA_READINESS_CHECK_PATH": HEALTH_LIVE,
                "PORT": str(container_port(settings)),
            },
        }
    return functions


def _collector(settings: Settings, functions: dict[str, Any]) -> list[str]:
    """The ADOT collector layer on every function (spans and OTLP metrics go to it on
    localhost); returns the header note."""
    if not uses_otlp(settings) or settings.tracing.exporter.endpoint:
        return []
    arn = settings.tracing.aws_layer_arn
    if not arn:
        return [
            "OTLP export to localhost:4318 needs a collector: set tracing.aws_layer_arn to the",
            "ADOT collector layer of your region (aws-otel-collector-<arch>-ver-...), or",
            "tracing.exporter.endpoint to a collector you run.",
        ]
    for function in functions.values():
        # A function's own layers replace the provider's: add it to each.
        function["layers"] = [*function.get("layers", []), arn]
    return ["Spans go to the ADOT collector layer (localhost:4318), then to X-Ray."]


def _schedules(settings: Settings) -> list[dict[str, Any]]:
    """``aws_lambda.events`` entries with a ``schedule`` become EventBridge schedules whose
    input names the entry, so the handler runs exactly that action."""
    out = []
    for name, config in settings.aws_lambda.events.items():
        if config.schedule:
            event = {"source": "aiservice.schedule", "detail-type": "Scheduled Event"}
            schedule = {"rate": [config.schedule], "input": {**event, "detail": {"schedule": name}}}
            out.append({"schedule": schedule})
    return out


def _resources(settings: Settings) -> dict[str, Any]:
    worker_timeout = min(settings.deploy.timeout_seconds, 900)
    name = "${self:service}-${sls:stage}"
    return {
        "Resources": {
            "StateTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": f"{name}-state",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                },
            },
            "WorkQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": f"{name}-work",
                    # AWS: at least 6x the consumer's timeout, or messages reappear mid-run.
                    "VisibilityTimeout": 6 * worker_timeout,
                    "SqsManagedSseEnabled": True,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 5,
                    },
                },
            },
            "WorkDeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": f"{name}-work-dlq",
                    "MessageRetentionPeriod": 1209600,
                    "SqsManagedSseEnabled": True,
                },
            },
        },
        "Outputs": {
            "StateTableName": {"Value": {"Ref": "StateTable"}},
            "WorkQueueUrl": {"Value": {"Ref": "WorkQueue"}},
            "WorkDeadLetterQueueUrl": {"Value": {"Ref": "WorkDeadLetterQueue"}},
        },
    }


def _provider(settings: Settings, items: list[Binding]) -> dict[str, Any]:
    d = settings.deploy
    provider: dict[str, Any] = {
        "name": "aws",
        "runtime": d.lambda_runtime,
        "architecture": "x86_64",
        "region": d.region,
        "stage": f"${{opt:stage, '{d.stage}'}}",
        "memorySize": d.memory_mb,
        "logRetentionInDays": 30,
        "environment": _environment(settings, items),
        "iam": {"role": {"statements": _iam(settings, items)}},
    }
    if settings.tracing.enabled:
        # Active tracing: Lambda's own X-Ray segments, and the role may put trace segments
        # (what the ADOT collector's X-Ray exporter does with our spans).
        provider["tracing"] = {"lambda": True}
    if d.lambda_subnet_ids:
        # Serverless adds the ENI permissions (AWSLambdaVPCAccessExecutionRole) itself.
        provider["vpc"] = {
            "securityGroupIds": list(d.lambda_security_group_ids),
            "subnetIds": list(d.lambda_subnet_ids),
        }
    return provider


def render_lambda(settings: Settings) -> dict[str, str]:
    items = bindings(settings)
    doc: dict[str, Any] = {
        "service": settings.service.name,
        "frameworkVersion": "3",
        # v3's schema predates python3.12 (which Lambda supports): keep that a warning.
        "configValidationMode": "warn",
        "provider": _provider(settings, items),
        # One zip for every function: the aiservice wheel with its dependencies, the
        # adapters, the config files and the flows, nothing else (no tests, no dev tools).
        "package": {"artifact": ARTIFACT},
        "functions": _functions(settings),
        "resources": _resources(settings),
    }
    custom: dict[str, str] = {}
    folder = flows_dir(settings)
    if folder is not None:
        custom["flowsDir"] = folder
    extras = package_extras(settings, "aws", telemetry="xray")
    if extras != ["aws"]:  # read by scripts/build-lambda-package.sh
        custom["packageExtras"] = ",".join(extras)
    if custom:
        doc["custom"] = custom
    note = [
        f"Build {ARTIFACT} first: scripts/build-lambda-package.sh",
        *runtime_note(items),
        *_collector(settings, doc["functions"]),
    ]
    return {"serverless.yml": dump(doc, head=header("lambda", note))}
