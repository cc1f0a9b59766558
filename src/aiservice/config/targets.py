"""The sections about where the service runs: ``deploy`` (inputs of ``aiservice render``)
and ``aws_lambda`` (what the Lambda bridge does with non-HTTP events)."""

from typing import Any, Literal

from pydantic import Field, model_validator

from .factories import new_dict, new_list
from .sections import Section


class DeploySettings(Section):
    """Inputs of ``aiservice render`` that are not runtime settings."""

    image: str = "aiservice:latest"
    region: str = "us-east-1"
    gcp_project: str = "my-project"
    gcp_region: str = "us-central1"
    memory_mb: int = Field(1024, ge=128)
    cpu: str = "1"
    timeout_seconds: int = Field(540, ge=1)
    concurrency: int = Field(80, ge=1)
    min_instances: int = Field(0, ge=0)
    max_instances: int = Field(10, ge=1)
    replicas: int = Field(2, ge=1)
    ollama_sidecar: bool = False
    models_bucket: str | None = None
    stage: str = "dev"
    """Serverless Framework stage (Lambda) and the suffix of per-stage resource names."""
    api_timeout_seconds: int = Field(29, ge=1, le=900)
    """Lambda HTTP function timeout (API Gateway cuts requests at 30 s)."""
    lambda_streaming: bool = True
    """Also render the Lambda Web Adapter function with a RESPONSE_STREAM Function URL."""
    namespace: str = "default"
    """Kubernetes namespace."""
    redis: bool = True
    """Render a Redis for docker-compose and Kubernetes (shared cache and limits)."""
    env: dict[str, str] = Field(default_factory=new_dict)
    """Extra plain environment variables for every target."""
    public: bool | None = None
    """Cloud Run / Cloud Functions: ``true`` lets anyone reach the service (the app's own
    API keys authenticate), ``false`` requires Google IAM (roles/run.invoker). ``null``:
    public exactly when the configuration has API keys (``auth``), so an open gateway is
    never put on the internet by default."""
    k8s_monitoring: bool = True
    """Kubernetes: also render ``k8s/monitoring/`` (a PrometheusRule for the Prometheus
    Operator and a Grafana dashboard ConfigMap for the dashboard sidecar), applied apart
    from ``k8s/`` so a cluster without the Operator's CRDs still deploys the app."""
    k8s_monitoring_labels: dict[str, str] = Field(default_factory=new_dict)
    """Extra labels of the PrometheusRule, to match the Prometheus ``ruleSelector``
    (kube-prometheus-stack selects ``release: <its Helm release name>``)."""
    k8s_service_account: str | None = None
    """Kubernetes ServiceAccount the pods run as (rendered with its annotations)."""
    k8s_service_account_annotations: dict[str, str] = Field(default_factory=new_dict)
    """Annotations of that ServiceAccount: ``iam.gke.io/gcp-service-account`` (Workload
    Identity) or ``eks.amazonaws.com/role-arn`` (IRSA) for gcp-sm / aws-sm references."""
    vpc_connector: str | None = None
    """Cloud Run / Cloud Functions: Serverless VPC Access connector for egress."""
    vpc_network: str | None = None
    """Cloud Run Direct VPC egress: network (instead of a connector)."""
    vpc_subnetwork: str | None = None
    """Cloud Run Direct VPC egress: subnetwork (default: the network's in the region)."""
    vpc_egress: Literal["private-ranges-only", "all-traffic"] = "private-ranges-only"
    """Which egress goes through the VPC (with a connector or network)."""
    cloudsql_instances: list[str] = Field(default_factory=new_list)
    """Cloud Run: Cloud SQL instances (``project:region:instance``) to connect to."""
    lambda_runtime: Literal["python3.11", "python3.12", "python3.13"] = "python3.12"
    """Lambda runtime; scripts/build-lambda-package.sh builds wheels and bytecode for it."""
    lambda_subnet_ids: list[str] = Field(default_factory=new_list)
    """Lambda VPC subnets (set together with ``lambda_security_group_ids``)."""
    lambda_security_group_ids: list[str] = Field(default_factory=new_list)
    """Lambda VPC security groups."""
    lambda_snapstart: bool = False
    """Lambda SnapStart on the ``api`` and ``worker`` functions (python3.12+): new
    environments resume from a snapshot of the started app instead of importing and
    starting it (docs/deploy/lambda-packaging.md, "SnapStart")."""

    @model_validator(mode="after")
    def _vpc_pairs(self) -> "DeploySettings":
        if bool(self.lambda_subnet_ids) != bool(self.lambda_security_group_ids):
            raise ValueError(
                "deploy.lambda_subnet_ids and deploy.lambda_security_group_ids go together"
            )
        if self.vpc_connector and self.vpc_network:
            raise ValueError("deploy.vpc_connector and deploy.vpc_network exclude each other")
        if self.vpc_subnetwork and not self.vpc_network:
            raise ValueError("deploy.vpc_subnetwork needs deploy.vpc_network")
        if self.lambda_snapstart and self.lambda_runtime == "python3.11":
            # Lambda offers SnapStart for Python from python3.12 on.
            raise ValueError("deploy.lambda_snapstart needs deploy.lambda_runtime python3.12+")
        return self


class LambdaEventSettings(Section):
    """What to do with a non-HTTP Lambda event (EventBridge rule, schedule, SNS, S3)."""

    trigger: Literal["eventbridge", "sns", "s3"] = "eventbridge"
    schedule: str | None = None
    """``rate(1 hour)`` / ``cron(...)``: rendered as a schedule of the Lambda worker."""
    match: dict[str, str] = Field(default_factory=new_dict)
    """Fields that must equal these values (event top level; each record for SNS/S3)."""
    action: str = "http"
    """``http``: an in-process request to the app; ``message``: a queue message handler."""
    method: str = "POST"
    path: str | None = None
    body: Any = None
    """JSON body of the ``http`` action; ``None`` sends the event (or record) itself."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer`` by the ``http`` action (value or reference)."""
    message: dict[str, Any] = Field(default_factory=new_dict)
    """The ``message`` action's message (needs ``kind``); the event is added as ``event``."""


class AwsLambdaSettings(Section):
    events: dict[str, LambdaEventSettings] = Field(default_factory=new_dict)
    """Named actions for non-HTTP events, tried in order; the first match runs."""
    api_gateway_base_path: str = "/"
    """Custom-domain base path to strip from REST API paths."""
