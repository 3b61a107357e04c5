"""Static checks of the production-topology files a user relies on.

docker-compose.yaml, .env.example and .github/workflows/pipeline.yml are not executed here
(no Docker, no GitHub): they are parsed and their structure is asserted, so that a change
that would break `docker compose up -d` or the CI contract is caught early.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
WORKFLOW = ROOT / ".github" / "workflows" / "pipeline.yml"
DOCKERFILES = ROOT / "docker"

SERVICES = ("postgres", "minio", "minio-init", "mlflow", "serve")
ONE_SHOT = {"minio-init"}

# `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and bare `$VAR`; `$$` is compose's escape for a
# literal `$` (expanded by the container's shell, not by compose) and is skipped.
_INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
# A whole value that is exactly one interpolation without a default (`${VAR}` or `${VAR:?msg}`).
_SECRET_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}$")
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
_SECRET_KEY_SUFFIXES = ("PASSWORD", "SECRET_ACCESS_KEY")

# Every variable the tool or the stack reads must be documented in .env.example.
DOCUMENTED_VARIABLES = {
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "PFP_MODEL_NAME",
    "PFP_CONFIG",
    "PFP_PROFILE",
    "PFP_DEVICE",
    "PFP_LOG_FORMAT",
    "PFP_LOG_LEVEL",
    "PFP_ALERT_WEBHOOK_URL",
    "PFP_PRODUCTION_RUNTIME",
    "PFP_OPTUNA_STORAGE",
    "PFP_WORKER_ID",
    "PFP_HOME",
    "PFP_DEBUG",
    "PFP_SERVE_URL",
    "PFP_SERVE_TOKEN",
    "PFP_PREDICTION_LOG_DIR",
    "WANDB_API_KEY",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_MODE",
    "WANDB_DIR",
    "DVC_REMOTE_URL",
    "DVC_NO_ANALYTICS",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(str(part) for part in cmd) if isinstance(cmd, list) else str(cmd)


def _argv(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", "")
    return [str(part) for part in cmd] if isinstance(cmd, list) else shlex.split(str(cmd))


def _option(argv: list[str], flag: str) -> str | None:
    """Value following `flag` in an argv list (None when the flag is absent)."""
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def _compose_text_without_comments() -> str:
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short syntax means service_started
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _env_example_entries() -> list[tuple[int, str]]:
    """(line index, variable name) for every `NAME=` or commented-out `# NAME=` line."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [(i, m.group(1)) for i, line in enumerate(lines) if (m := _ENV_LINE.match(line))]


def _workflow_triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict)
    return triggers


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
            yield path, str(key), value
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
            if isinstance(value, str) and "=" in value:
                key, _, val = value.partition("=")
                yield path, key, val


def test_compose_defines_all_services(services: dict[str, Any]) -> None:
    """The stack has postgres, minio, a one-shot minio-init, the mlflow server and serve."""
    assert set(SERVICES) <= set(services), sorted(services)


def test_compose_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    """The file follows the Compose spec, which dropped the top-level `version:` key."""
    assert "version" not in compose


def test_mlflow_waits_for_database_and_buckets(services: dict[str, Any]) -> None:
    """mlflow starts only once postgres is healthy and minio-init has created the buckets."""
    deps = _depends_on(services["mlflow"])
    assert deps.get("postgres") == "service_healthy"
    assert deps.get("minio-init") == "service_completed_successfully"


def test_minio_init_waits_for_healthy_minio_and_creates_buckets(services: dict[str, Any]) -> None:
    """minio-init runs after MinIO is healthy and creates the `mlflow` and `dvc` buckets."""
    init = services["minio-init"]
    assert _depends_on(init).get("minio") == "service_healthy"
    script = _command(init) + " " + str(init.get("entrypoint", ""))
    assert re.search(r"mc mb\b.*\b\w+/mlflow\b", script)
    assert re.search(r"mc mb\b.*\b\w+/dvc\b", script)
    assert str(init.get("restart", "no")) == "no", "a one-shot job must not be restarted"


def test_long_running_services_have_healthcheck_and_restart(services: dict[str, Any]) -> None:
    """Every service except the one-shot init job has a healthcheck and a restart policy."""
    for name in set(SERVICES) - ONE_SHOT:
        service = services[name]
        test = (service.get("healthcheck") or {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert not (service.get("healthcheck") or {}).get("disable"), name
        restart = str(service.get("restart", "no"))
        assert restart in {"always", "unless-stopped"} or restart.startswith("on-failure"), (name, restart)


def test_postgres_healthcheck_uses_pg_isready(services: dict[str, Any]) -> None:
    """postgres reports healthy via pg_isready and keeps its data in a volume."""
    pg = services["postgres"]
    assert "pg_isready" in " ".join(map(str, pg["healthcheck"]["test"]))
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg.get("volumes", []))


def test_mlflow_health_endpoint_is_checked(services: dict[str, Any]) -> None:
    """mlflow's healthcheck probes the server's /health endpoint."""
    assert "/health" in " ".join(map(str, services["mlflow"]["healthcheck"]["test"]))


def test_mlflow_uses_postgres_backend_and_s3_artifacts(services: dict[str, Any]) -> None:
    """mlflow stores runs/registry in postgres and proxies artifacts to s3://mlflow with one worker."""
    mlflow = services["mlflow"]
    argv = _argv(mlflow)
    assert argv[:2] == ["mlflow", "server"], argv
    assert re.fullmatch(r"postgresql://.+@postgres:5432/.+", _option(argv, "--backend-store-uri") or "")
    assert (_option(argv, "--artifacts-destination") or "").rstrip("/") == "s3://mlflow"
    assert "--serve-artifacts" in argv
    assert _option(argv, "--workers") == "1"
    env = _environment(mlflow)
    assert env.get("MLFLOW_S3_ENDPOINT_URL") == "http://minio:9000"
    assert env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "").lower() == "false"
    assert "build" in mlflow and "mlflow.Dockerfile" in str(mlflow["build"])


def test_backend_store_uri_password_is_interpolated(services: dict[str, Any]) -> None:
    """The password inside the backend-store URI comes from .env, never a literal."""
    uri = _option(_argv(services["mlflow"]), "--backend-store-uri") or ""
    match = re.fullmatch(r"postgresql://(\$\{[^}]*\}|[^:@]+):(\$\{[^}]*\}|[^@]*)@postgres:5432/.+", uri)
    assert match, uri
    password = match.group(2)
    assert _SECRET_REF.match(password), password


def test_serve_serves_the_production_alias(services: dict[str, Any]) -> None:
    """serve runs `pfp serve --alias production` (it follows the alias: no restart after a promotion), only
    under the serve profile, on 0.0.0.0:8080, healthy once /v2/health/ready answers, prediction log on a volume."""
    serve = services["serve"]
    argv = _argv(serve)
    assert argv[:2] == ["pfp", "serve"], argv
    assert _option(argv, "--alias") == "production"
    assert _option(argv, "--host") == "0.0.0.0" and _option(argv, "--port") == "8080"
    assert "serve" in serve.get("profiles", [])
    assert _depends_on(serve).get("mlflow") == "service_healthy"
    env = _environment(serve)
    assert env.get("MLFLOW_TRACKING_URI") == "http://mlflow:5000"
    assert env.get("PFP_HOME") == "/home/serve/.pfp"
    assert any(str(v).endswith(":/home/serve/.pfp") for v in serve.get("volumes", []))
    assert "/v2/health/ready" in " ".join(serve["healthcheck"]["test"])
    assert "build" in serve and "serve.Dockerfile" in str(serve["build"])


def test_dockerfiles_exist() -> None:
    """The images the compose file builds have their Dockerfiles in docker/."""
    mlflow = (DOCKERFILES / "mlflow.Dockerfile").read_text(encoding="utf-8")
    serve = (DOCKERFILES / "serve.Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in mlflow and "psycopg2-binary" in mlflow and "boto3" in mlflow
    assert "FROM python:3.11-slim" in serve and "ultralytics-opencv-headless" in serve
    assert "COPY src ./src" in serve and '"pfp", "serve"' in serve  # the image runs pfp itself
    for var in ("YOLO_OFFLINE=1", "YOLO_AUTOINSTALL=0", "YOLO_CONFIG_DIR=/tmp/yolo"):
        assert var in serve, var


def test_no_literal_secrets_in_compose(compose: dict[str, Any]) -> None:
    """Every *PASSWORD / *SECRET_ACCESS_KEY value is a `${VAR}` interpolation without a default."""
    checked = 0
    for path, key, value in _walk(compose):
        if key.upper().endswith(_SECRET_KEY_SUFFIXES):
            checked += 1
            assert isinstance(value, str) and _SECRET_REF.match(value), f"{path}.{key}={value!r}"
    assert checked >= 3  # postgres, minio, mlflow at least


def test_compose_variables_are_documented() -> None:
    """Every variable compose interpolates from the environment is documented in .env.example."""
    used = {a or b for a, b in _INTERPOLATION.findall(_compose_text_without_comments())}
    documented = {name for _, name in _env_example_entries()}
    assert used, "expected ${VAR} interpolations in docker-compose.yaml"
    assert used <= documented, sorted(used - documented)


def test_env_example_documents_every_tool_variable() -> None:
    """.env.example lists every variable the tool and the stack read."""
    documented = {name for _, name in _env_example_entries()}
    assert DOCUMENTED_VARIABLES <= documented, sorted(DOCUMENTED_VARIABLES - documented)


def test_env_example_variables_have_comments() -> None:
    """Each variable in .env.example is preceded by a descriptive comment line, and none repeats."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    entries = _env_example_entries()
    names = [name for _, name in entries]
    assert len(names) == len(set(names)), "duplicate variable in .env.example"
    for index, name in entries:
        above = lines[index - 1] if index > 0 else ""
        assert above.startswith("#") and not _ENV_LINE.match(above), f"{name}: no comment line above"
        assert len(above.lstrip("# ").strip()) > 5, f"{name}: empty comment"


def test_workflow_has_pipeline_and_rollback_jobs(workflow: dict[str, Any]) -> None:
    """The workflow parses and defines the `pipeline` and `rollback` jobs."""
    assert {"pipeline", "rollback"} <= set(workflow["jobs"])


def test_workflow_runs_are_serialized(workflow: dict[str, Any]) -> None:
    """A concurrency group (workflow level) keeps two pipeline runs from overlapping."""
    concurrency = workflow.get("concurrency")
    group = concurrency.get("group") if isinstance(concurrency, dict) else concurrency
    assert group
    if isinstance(concurrency, dict):
        assert concurrency.get("cancel-in-progress") in (None, False)


def test_workflow_triggers(workflow: dict[str, Any]) -> None:
    """pipeline runs weekly, on data/config pushes, and on manual dispatch with rollback inputs."""
    triggers = _workflow_triggers(workflow)
    assert triggers.get("schedule")
    paths = triggers["push"]["paths"]
    assert {"data/**", "dataset_info.csv", "configs/**"} <= set(paths)
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert inputs["dry_run"]["type"] == "boolean"
    assert inputs["to_version"].get("required", False) is False


def test_rollback_job_is_workflow_dispatch_only(workflow: dict[str, Any]) -> None:
    """rollback runs only on a manual dispatch and calls `pfp rollback ... --json`."""
    job = workflow["jobs"]["rollback"]
    condition = str(job.get("if", ""))
    assert "github.event_name == 'workflow_dispatch'" in condition
    assert "||" not in condition
    script = "\n".join(str(step.get("run", "")) for step in job["steps"])
    assert ".venv/bin/pfp" in script and "rollback" in script and "--json" in script
    assert "--to-version" in script and "--dry-run" in script


def test_pipeline_job_runs_and_interprets_run_all(workflow: dict[str, Any]) -> None:
    """pipeline installs, pulls data, runs `pfp run-all --json`, uploads the report and maps exit codes."""
    steps = workflow["jobs"]["pipeline"]["steps"]
    script = "\n".join(str(step.get("run", "")) for step in steps)
    for needle in ("make install", "dvc pull", ".venv/bin/pfp run-all --json > run-all.json"):
        assert needle in script, needle
    uses = [str(step.get("uses", "")) for step in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(
        u.startswith("actions/upload-artifact@") and "run-all.json" in str(s.get("with", {}).get("path"))
        for u, s in zip(uses, steps, strict=True)
    )
    for code in ("10)", "11)", "12)", "13)"):
        assert code in script, code
    assert "secrets." in WORKFLOW.read_text(encoding="utf-8")


def test_trainer_service_scales_as_workers_of_one_study(services: dict[str, Any]) -> None:
    """`docker compose --profile train up --scale trainer=4 trainer`: N identical `pfp train --worker` processes on
    the stack's PostgreSQL (own `optuna` database) and MLflow server; nothing that pins one container (a name, a
    host port, a worker id) so compose can scale it; a crashed worker restarts, a finished one stays done."""
    trainer = services["trainer"]
    argv = _argv(trainer)
    assert argv[:3] == ["pfp", "train", "--worker"], argv
    assert "train" in trainer.get("profiles", [])
    assert "container_name" not in trainer and not trainer.get("ports")
    env = _environment(trainer)
    assert env.get("MLFLOW_TRACKING_URI") == "http://mlflow:5000"
    assert re.fullmatch(r"postgresql://.+:(\$\{[^}]*\})@postgres:5432/optuna", env.get("PFP_OPTUNA_STORAGE", ""))
    assert "PFP_WORKER_ID" not in env  # each container is named after its own host name
    assert str(trainer.get("restart")) == "on-failure"
    deps = _depends_on(trainer)
    assert deps.get("mlflow") == "service_healthy"
    assert deps.get("optuna-db-init") == "service_completed_successfully"
    init = services["optuna-db-init"]
    assert "CREATE DATABASE optuna" in _command(init) and str(init.get("restart")) == "no"
    assert _depends_on(init).get("postgres") == "service_healthy"
    assert any(str(v).endswith(":/project") for v in trainer.get("volumes", []))
    dockerfile = (ROOT / str(trainer["build"]["dockerfile"])).read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile and "constraints.txt" in dockerfile
    assert "psycopg2-binary" in dockerfile and "YOLO_OFFLINE=1" in dockerfile
