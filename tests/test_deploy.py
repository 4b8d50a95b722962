"""deploy/ stays true to vidq: what can be checked without Docker or a cluster.

- Kubernetes manifests: against the Kubernetes JSON schemas that kubernetes-validate ships
  (strict: unknown fields fail), offline. KEDA's and the Prometheus Operator's resources
  have no schema there: their structure is checked here, the autoscaling query is run on a
  migrated SQLite and PostgreSQL database, and the metric names are vidq's own.
- compose.yaml: against the Compose Specification's schema that check-jsonschema ships.
- Dockerfile: parsed by the `dockerfile` package (Docker's own parser).
- Everywhere: every VIDQ_* variable is a setting and validates, every command is a vidq
  command, every other variable is documented by its own program.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
from kubernetes_validate import utils as kubernetes_validate
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from vidq import metrics
from vidq.cli import main as cli
from vidq.config import Settings
from vidq.db.database import Database, sync_url
from vidq.jobs import queue, reads
from vidq.jobs.accounts import create_owner
from vidq.jobs.states import JobStatus
from vidq.media.formats import encoder_memory_bytes

from .conftest import LiveServer, free_port
from .deploy_files import (
    DEPLOY,
    DOCKERFILE,
    K8S,
    OTHER_VARIABLE,
    ROOT,
    applied_documents,
    compose,
    compose_environment,
    container_environment,
    dockerfile_stages,
    documents,
    duration_seconds,
    find,
    image_env,
    image_uid,
    interpolation_names,
    kustomization,
    manifest_files,
    only_container,
    pod_templates,
    quantity,
)
from .test_queue import new_job

# The oldest Kubernetes release still commonly run, and the newest the schemas cover.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# Kinds of custom resources: no schema ships for them, so they are checked one by one below.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
PROMETHEUS_ALTERNATIVE = "worker-autoscaling-prometheus.yaml"
POSTGRESQL_AUTOSCALING = "worker-autoscaling-postgresql.yaml"
SETTINGS = {f"VIDQ_{name.upper()}" for name in Settings.model_fields}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process started with `env` would have (it must validate)."""
    unknown = {name for name in env if name.startswith("VIDQ_")} - SETTINGS
    assert not unknown, f"not settings: {unknown}"
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return Settings()


def command_function(argv: list[str]) -> Any:
    """What `argv` runs, as the vidq command parses it."""
    assert argv[0] == "vidq", argv
    return cli.build_parser().parse_args(argv[1:]).func


def python_env() -> dict[str, str]:
    """This process's environment for a child, without any VIDQ_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIDQ_")}


def all_documents() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in documents(path)]


# Kubernetes: the schemas.


def test_every_kubernetes_resource_matches_its_schema() -> None:
    checked = []
    for doc in all_documents():
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked.append(doc["kind"])
    assert sorted(set(checked)) == [
        "ConfigMap",
        "Deployment",
        "Job",
        "Namespace",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ]


def test_the_schema_check_is_strict() -> None:
    worker = copy.deepcopy(find(all_documents(), "Deployment", "vidq-worker"))
    worker["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_applies_every_manifest_once() -> None:
    listed = kustomization()["resources"]
    names = [path.name for path in manifest_files()]
    assert sorted(listed) == sorted(set(names) - {PROMETHEUS_ALTERNATIVE})
    namespace = kustomization()["namespace"]
    assert find(applied_documents(), "Namespace", namespace)
    for doc in all_documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    images = {image["name"] for image in kustomization()["images"]}
    for template in pod_templates(all_documents()).values():
        assert only_container(template)["image"] in images


# Kubernetes: the workloads.


def test_the_pods_run_as_the_restricted_pod_security_standard_asks() -> None:
    namespace = find(applied_documents(), "Namespace", kustomization()["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, template in pod_templates(all_documents()).items():
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False, name
        # A Service named `vidq` would set VIDQ_PORT=tcp://… in the pods of the namespace.
        assert spec["enableServiceLinks"] is False, name
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == image_uid() != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        container = only_container(template)
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert quantity(resources["requests"]["memory"]) <= quantity(resources["limits"]["memory"])
        assert all(set(volume) == {"name", "emptyDir"} for volume in spec.get("volumes", []))


@pytest.mark.parametrize("workload", ["vidq-api", "vidq-worker"])
def test_the_data_directory_is_a_scratch_volume(workload: str) -> None:
    docs = all_documents()
    template = pod_templates(docs)[workload]
    container = only_container(template)
    data_dir = Path(container_environment(docs, container)["VIDQ_DATA_DIR"])
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = [m for m in container["volumeMounts"] if data_dir.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1
    # Below the mount point, not at it: an emptyDir's root belongs to root, and vidq makes
    # its data directory itself (0700).
    assert data_dir != Path(mounts[0]["mountPath"])
    assert "emptyDir" in volumes[mounts[0]["name"]]


def test_each_workload_runs_its_vidq_command(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = all_documents()
    expected = {
        "vidq-api": cli.cmd_api,
        "vidq-worker": cli.cmd_worker,
        "vidq-migrate": cli.cmd_migrate,
    }
    templates = pod_templates(docs)
    assert set(templates) == set(expected)
    for name, template in templates.items():
        container = only_container(template)
        # `args`, not `command`: the image has no ENTRYPOINT, and args replace its CMD.
        assert "command" not in container
        assert command_function(container["args"]) is expected[name]
        settings = settings_from(container_environment(docs, container), monkeypatch)
        assert urlparse(settings.resolved_database_url).scheme == "postgresql"
        assert urlparse(settings.resolved_storage_url).scheme == "s3"


def test_the_api_is_probed_and_served_on_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = all_documents()
    deployment = find(docs, "Deployment", "vidq-api")
    template = deployment["spec"]["template"]
    container = only_container(template)
    settings = settings_from(container_environment(docs, container), monkeypatch)
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    service = find(docs, "Service", "vidq-api")
    assert service["spec"]["selector"] == template["metadata"]["labels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    budget = find(docs, "PodDisruptionBudget", "vidq-api")
    assert budget["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
    assert deployment["spec"]["replicas"] > budget["spec"]["minAvailable"]


def test_worker_resources_fit_the_measured_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = all_documents()
    deployment = find(docs, "Deployment", "vidq-worker")
    assert "replicas" not in deployment["spec"]  # KEDA's to set
    template = deployment["spec"]["template"]
    container = only_container(template)
    settings = settings_from(container_environment(docs, container), monkeypatch)
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    # The request holds 1080p H.264 in every slot, by the measured table vidq itself uses.
    per_slot = encoder_memory_bytes("h264", 1920, 1080)
    assert 1.3 * 2**30 < per_slot < 1.6 * 2**30
    assert quantity(requests["memory"]) >= settings.workers * per_slot + 256 * 2**20
    # The limit holds the most vidq lets every ffmpeg take, and the Python process.
    ffmpeg_most = settings.workers * settings.ffmpeg_memory_bytes
    assert quantity(limits["memory"]) >= ffmpeg_most + 256 * 2**20
    # Threads as measured, within the CPUs asked for.
    assert 1 <= settings.ffmpeg_threads * settings.workers <= quantity(requests["cpu"])
    # Scratch holds the input and its output.
    (scratch,) = [v for v in template["spec"]["volumes"] if v["name"] == "data"]
    assert quantity(scratch["emptyDir"]["sizeLimit"]) >= 2 * settings.max_upload_bytes
    # SIGTERM: the grace vidq gives conversions, then time to re-queue them and close.
    margin = template["spec"]["terminationGracePeriodSeconds"] - settings.shutdown_grace_seconds
    assert 10 <= margin <= 60
    budget = find(docs, "PodDisruptionBudget", "vidq-worker")
    assert budget["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]


def test_secrets_are_placeholders() -> None:
    secret = find(all_documents(), "Secret", "vidq-secrets")
    assert "data" not in secret
    for name, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, name
    # A plain postgresql:// URL, which vidq and KEDA's scaler (pgx) both read.
    assert secret["stringData"]["VIDQ_DATABASE_URL"].startswith("postgresql://")


# Kubernetes: autoscaling (KEDA and the Prometheus Operator: no schema ships, so by hand).

SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "initialCooldownPeriod",
    "cooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}


def scaled_object(file_name: str) -> dict[str, Any]:
    return find(documents(K8S / file_name), "ScaledObject", "vidq-worker")


@pytest.mark.parametrize("file_name", [POSTGRESQL_AUTOSCALING, PROMETHEUS_ALTERNATIVE])
def test_the_scaled_object_drives_the_worker(
    file_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = all_documents()
    scaled = scaled_object(file_name)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC
    worker = find(docs, "Deployment", "vidq-worker")
    assert spec["scaleTargetRef"] == {
        "apiVersion": worker["apiVersion"],
        "kind": "Deployment",
        "name": worker["metadata"]["name"],
    }
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # KEDA makes an HPA with this behaviour: the HPA's own schema checks it.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-vidq-worker"},
        "spec": {
            "scaleTargetRef": spec["scaleTargetRef"],
            "minReplicas": max(1, spec["minReplicaCount"]),
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(hpa, version, strict=True)
    (trigger,) = spec["triggers"]
    assert set(trigger) <= TRIGGER
    # One pod per job counted: as many as each worker pod converts at once.
    settings = settings_from(
        container_environment(docs, only_container(worker["spec"]["template"])), monkeypatch
    )
    target = {"postgresql": "targetQueryValue", "prometheus": "threshold"}[trigger["type"]]
    assert float(trigger["metadata"][target]) == settings.workers


def postgresql_trigger() -> dict[str, Any]:
    (trigger,) = scaled_object(POSTGRESQL_AUTOSCALING)["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    return dict(trigger)


def test_the_postgresql_trigger_reads_the_database_url_secret() -> None:
    docs = all_documents()
    auth = find(docs, "TriggerAuthentication", postgresql_trigger()["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    assert ref["key"] == "VIDQ_DATABASE_URL"
    assert ref["key"] in find(docs, "Secret", ref["name"])["stringData"]


async def _queue_three_and_claim_one(url: str) -> dict[JobStatus, int]:
    database = Database(url)
    try:
        owner, _ = await create_owner(database, "alice")
        for _ in range(3):
            await queue.submit(database, new_job(owner.id), max_unfinished=10)
        assert await queue.claim_next(database, worker_id="w", lease_seconds=30)
        return await reads.counts_by_status(database)
    finally:
        await database.close()


def test_the_postgresql_trigger_counts_queued_and_running_jobs(db_url: str, tmp_path: Path) -> None:
    # The database as the migration Job leaves it: `vidq migrate`, as a program.
    env = {"VIDQ_DATABASE_URL": db_url, "VIDQ_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "vidq.cli.main", "migrate"],
        env={**python_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "newest schema" in done.stdout
    counts = asyncio.run(_queue_three_and_claim_one(db_url))
    query = postgresql_trigger()["metadata"]["query"]
    assert set(re.findall(r"'(\w+)'", query)) == {JobStatus.QUEUED, JobStatus.RUNNING}
    engine = create_engine(sync_url(db_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            (count,) = connection.execute(text(query)).one()
    finally:
        engine.dispose()
    assert count == counts[JobStatus.QUEUED] + counts[JobStatus.RUNNING] == 3


def test_the_prometheus_trigger_reads_vidq_metrics() -> None:
    docs = all_documents()
    (trigger,) = scaled_object(PROMETHEUS_ALTERNATIVE)["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    exported = {family.name for family in metrics.REGISTRY.collect()}
    assert set(re.findall(r"\bvidq_\w+", query)) == {"vidq_queue_depth", "vidq_jobs"} <= exported
    statuses = set(re.findall(r'status="(\w+)"', query))
    assert statuses == {JobStatus.RUNNING}
    # The series come from the ServiceMonitor's scrape of the API Service (job = its name).
    monitor = find(docs, "ServiceMonitor", "vidq-api")
    service = find(docs, "Service", "vidq-api")
    assert set(re.findall(r'job="([\w-]+)"', query)) == {service["metadata"]["name"]}
    labels = monitor["spec"]["selector"]["matchLabels"]
    assert labels.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["key"] == "VIDQ_METRICS_TOKEN"
    assert credentials["key"] in find(docs, "Secret", credentials["name"])["stringData"]


# Compose.


def test_compose_file_matches_the_compose_schema() -> None:
    vendored = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert list(validator.iter_errors(compose())) == []
    broken = compose()
    broken["services"]["worker"]["comand"] = ["vidq", "worker"]
    assert not validator.is_valid(broken)


def test_compose_runs_api_and_scalable_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert command_function(api["command"]) is cli.cmd_api
    assert command_function(worker["command"]) is cli.cmd_worker
    assert api["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / api["build"]["context"] / api["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert worker["image"] == api["image"] and worker["pull_policy"] == "never"
    # The API keeps the image's HEALTHCHECK (/healthz); a worker serves no HTTP.
    assert "healthcheck" not in api
    assert worker["healthcheck"] == {"disable": True}
    # `--scale worker=N`: nothing that two replicas could not share.
    assert not {"container_name", "ports"} & set(worker)
    # Both share one database, bucket and key.
    api_env, worker_env = compose_environment(api), compose_environment(worker)
    shared = ("VIDQ_DATABASE_URL", "VIDQ_STORAGE_URL", "VIDQ_S3_ENDPOINT_URL", "VIDQ_PUBLIC_URL")
    for name in (*shared, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert api_env[name] == worker_env[name], name
    assert "VIDQ_SECRET_KEY" in api["environment"] and "VIDQ_SECRET_KEY" in worker["environment"]
    api_settings = settings_from(api_env, monkeypatch)
    worker_settings = settings_from(worker_env, monkeypatch)
    (published,) = api["ports"]
    assert published == f"127.0.0.1:{api_settings.port}:{api_settings.port}"
    assert worker_settings.workers == 1
    margin = duration_seconds(worker["stop_grace_period"]) - worker_settings.shutdown_grace_seconds
    assert 5 <= margin <= 60


def test_compose_wires_postgresql_and_the_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    settings = settings_from(compose_environment(services["api"]), monkeypatch)
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "createbucket": {"condition": "service_completed_successfully"},
        }
    # The database URL names the postgres service's own user, password and database.
    postgres = compose_environment(services["postgres"])
    url = urlparse(settings.resolved_database_url)
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert (url.username, url.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert url.path == "/" + postgres["POSTGRES_DB"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    # The bucket the one-shot service makes is the one vidq stores in, on MinIO's endpoint,
    # with MinIO's credentials.
    bucket = urlparse(settings.resolved_storage_url).netloc
    make_bucket = services["createbucket"]
    assert make_bucket["restart"] == "no"
    assert f"mc mb --ignore-existing local/{bucket}" in " ".join(make_bucket["command"])
    assert make_bucket["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert "http://minio:9000" in " ".join(make_bucket["command"])
    minio = compose_environment(services["minio"])
    api_env = compose_environment(services["api"])
    assert api_env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert api_env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses to start otherwise
    # Presigned links would name minio:9000, which clients outside compose cannot resolve.
    assert settings.s3_redirect_downloads is False


# The image recipe.


def test_dockerfile_builds_in_stages_and_runs_as_a_user() -> None:
    args, stages = dockerfile_stages()
    build, runtime = stages
    assert build.name == "build"
    (copied,) = [c for c in runtime.all("copy") if c.flags]
    assert copied.flags == ("--from=build",)
    assert image_uid() != 0
    # The port vidq listens on is the one exposed.
    env = image_env()
    assert runtime.last("expose").value == (env["VIDQ_PORT"],)
    assert env["VIDQ_HOST"] == "0.0.0.0"
    # Every ${VARIABLE} in the recipe is one of its build arguments or a variable it sets.
    text = DOCKERFILE.read_text()
    declared = {arg.split("=")[0] for arg in args} | set(env)
    assert set(re.findall(r"\$\{?(\w+)", text)) <= declared
    assert command_function(list(runtime.last("cmd").value)) is cli.cmd_serve


def test_dockerfile_installs_the_repository_and_downloads_nothing_at_run_time() -> None:
    _, (build, runtime) = dockerfile_stages()
    # The build context holds only what the recipe copies (Dockerfile.dockerignore).
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split("\n")
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    sources = [s for c in build.all("copy") for s in c.value[:-1]]
    assert sorted(sources) == sorted(allowed)
    assert all((ROOT / source).exists() for source in sources)
    install = " ".join(c.value[0] for c in build.all("run"))
    assert "pip install" in install and "get_ffmpeg_exe" in install
    # Nothing is fetched once built: the last stage installs nothing, its commands neither.
    runtime_text = json.dumps([c.value for c in runtime.commands])
    for fetcher in ("pip", "apt", "curl", "wget", "http://", "https://"):
        assert fetcher not in runtime_text.replace("http://127.0.0.1", "")


def test_the_image_healthcheck_asks_healthz(live_server: LiveServer) -> None:
    _, stages = dockerfile_stages()
    healthcheck = stages[-1].last("healthcheck")
    assert healthcheck.json and healthcheck.value[:2] == ("CMD", "python")
    argv = [sys.executable, *healthcheck.value[2:]]
    assert "/healthz" in argv[-1]
    port = str(live_server.settings.port)
    ok = subprocess.run(argv, env={**python_env(), "VIDQ_PORT": port}, timeout=30)
    assert ok.returncode == 0
    closed = subprocess.run(
        argv, env={**python_env(), "VIDQ_PORT": str(free_port())}, capture_output=True, timeout=30
    )
    assert closed.returncode != 0


# Everywhere.


def test_every_variable_named_in_deploy_is_a_setting_or_documented() -> None:
    texts = {path: path.read_text() for path in DEPLOY.rglob("*") if path.is_file()}
    named = {name for text in texts.values() for name in re.findall(r"\bVIDQ_\w+", text)}
    assert named <= SETTINGS, named - SETTINGS
    # Every other variable deploy/ sets or reads, by name.
    others: set[str] = set(image_env())
    for service in compose()["services"].values():
        others |= set(service.get("environment") or {})
    others |= interpolation_names(texts[DEPLOY / "compose.yaml"])
    others |= set(re.findall(r"\$\$(\w+)", texts[DEPLOY / "compose.yaml"]))
    for doc in all_documents():
        others |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for template in pod_templates(all_documents()).values():
        others |= {item["name"] for item in only_container(template).get("env", [])}
    unknown = {n for n in others - SETTINGS if not OTHER_VARIABLE.fullmatch(n)}
    assert unknown == set()
