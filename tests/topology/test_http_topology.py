"""The production topology over HTTP: PostgreSQL-backed MLflow server, artifacts proxied to S3 (moto), DVC remote.

`pfp` is configured by environment variables only (MLFLOW_TRACKING_URI, MLFLOW_S3_ENDPOINT_URL, AWS keys), exactly as
a user switches from the embedded defaults to the docker-compose stack. One tiny real pipeline (20 epochs at 96 px
on 100 images, so the model detects something) runs once for the module; every test reads what it left behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import write_config
from tests.servers import ARTIFACT_BUCKET, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "pfp-topology"


@pytest.fixture(scope="module")
def deployed(stack, tmp_path_factory):
    """`pfp run-all --demo` against the stack, from the console script in a fresh process."""
    project = tmp_path_factory.mktemp("topology-project")
    shutil.copy(REPO / ".dvcignore", project / ".dvcignore")
    cfg = write_config(project / "tiny.yaml")
    env = {**os.environ, **stack.client_env(), "PFP_HOME": str(project / ".pfp"), "PFP_CONFIG": str(cfg),
           "PFP_MODEL_NAME": MODEL}
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "pfp"), "run-all", "--demo", "--json"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"project": project, "env": env, "result": json.loads(proc.stdout)["result"],
            "seconds": time.monotonic() - t0}


@pytest.fixture(scope="module")
def client(stack):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)


def test_run_all_promotes_a_version_read_back_over_rest(deployed, client):
    """Every step succeeds; the REST registry has the version at alias production, tagged production, with lineage."""
    from pfp_mlops.adapters.dvc import data_version

    assert [(s["step"], s["status"]) for s in deployed["result"]["steps"]] == [
        ("split", "ok"), ("train", "ok"), ("register", "ok"), ("promote", "ok"), ("validate", "ok")]
    mv = client.get_model_version_by_alias(MODEL, "production")
    assert mv.tags["stage"] == "production"
    expected = data_version(deployed["project"] / "data", deployed["project"]).md5
    assert expected and expected.endswith(".dir")
    info = json.loads((deployed["project"] / "runs" / "training_info.json").read_text())
    assert info["data_version"] == expected
    assert client.get_run(info["run_id"]).data.tags["pfp.data_version"] == expected
    assert mv.tags.get("data_version") == expected  # copied into the version's lineage at register


def test_model_version_artifacts_are_in_the_bucket(deployed, client, s3_client):
    """The server proxied the model's artifacts into s3://mlflow/ (listed straight from the S3 endpoint)."""
    mv = client.get_model_version_by_alias(MODEL, "production")
    keys = [o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=ARTIFACT_BUCKET)
            for o in page.get("Contents", [])]
    model_id = mv.source.rstrip("/").split("/")[-1] if mv.source.startswith("models:/") else None
    mlmodels = [k for k in keys if k.endswith("/MLmodel") and (model_id is None or model_id in k)]
    assert mlmodels, (mv.source, keys[:20])
    prefix = mlmodels[0].rsplit("/", 1)[0]
    assert any(k.startswith(prefix) and k.endswith(".pt") for k in keys), [k for k in keys if k.startswith(prefix)]


def _sample_images(deployed, n: int = 12) -> list[Path]:
    """A few dataset images: a 20-epoch model at the default confidence (0.25) misses some, never all of them."""
    return sorted((deployed["project"] / "data" / "images").rglob("*.png"))[:n]


def test_a_fresh_process_loads_production_from_the_server_and_predicts(deployed):
    """models:/<name>@production resolves through the server and the loaded model detects objects."""
    code = (
        "import sys, json, mlflow, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@production')\n"
        "out = m.predict(pd.DataFrame({'image': sys.argv[1:]}))\n"
        "print(json.dumps({'rows': len(out), 'columns': list(out.columns)}))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *map(str, _sample_images(deployed))], env=deployed["env"],
                          capture_output=True, text=True, timeout=300, cwd=deployed["project"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["columns"] == ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]
    assert out["rows"] >= 1


def test_mlflow_models_serve_answers_invocations_with_detections(deployed, tmp_path):
    """`mlflow models serve` of the production alias answers a real POST /invocations with detections."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@production", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            # The scoring server execs `uvicorn` by name: the venv's bin must be on PATH (as in an activated venv).
            env={**deployed["env"], "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}, cwd=tmp_path, stdout=fh,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve not ready: " + log.read_text()[-3000:]
            time.sleep(0.5)
        records = [{"image": base64.b64encode(p.read_bytes()).decode()} for p in _sample_images(deployed)]
        body = json.dumps({"dataframe_records": records}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200
            answer = json.loads(r.read())
    finally:
        _stop_group(proc)
    detections = answer["predictions"]
    assert detections, answer
    assert {"image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"} <= set(detections[0])
    assert detections[0]["class_name"] in ("rock", "paper", "scissors")


def _stop_group(proc: subprocess.Popen) -> None:
    """The server and its uvicorn worker: the whole process group."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_second_run_all_over_http_skips_every_step(deployed):
    """Nothing changed: the second run-all skips all five steps, in a few seconds, and exits 0."""
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "pfp"), "run-all", "--demo", "--json"], cwd=deployed["project"],
                          env=deployed["env"], capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = json.loads(proc.stdout)["result"]["steps"]
    assert {s["status"] for s in steps} == {"cached"}
    assert seconds < 20, seconds


def test_doctor_reports_every_configured_service_reachable(deployed, stack):
    """doctor: MLflow (SQL backend, proxied artifacts), S3 with the keys and the DVC remote are reachable: exit 0.

    The secret key never appears in its output.
    """
    project = deployed["project"]
    (project / ".dvc").mkdir(exist_ok=True)
    shutil.copy(REPO / ".dvc" / "config", project / ".dvc" / "config")
    env = {**deployed["env"], "AWS_ENDPOINT_URL_S3": stack.s3_endpoint}
    proc = subprocess.run([str(BIN / "pfp"), "doctor", "--no-gpu", "--json"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(proc.stdout)["result"]["checks"]}
    assert checks["mlflow"]["status"] == "ok" and "SQL database" in checks["mlflow"]["detail"]
    assert "proxied" in checks["mlflow"]["detail"]
    assert checks["s3"]["status"] == "ok" and "mlflow" in checks["s3"]["detail"]
    assert checks["dvc remote"]["status"] == "ok" and "'dvc'" in checks["dvc remote"]["detail"]
    secret = stack.client_env()["AWS_SECRET_ACCESS_KEY"]
    assert secret not in proc.stdout and secret not in proc.stderr
