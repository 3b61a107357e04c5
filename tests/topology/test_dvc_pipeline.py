"""The project's own dvc.yaml: `dvc repro` runs split → train → register → promote → validate by calling `pfp`, a
second `dvc repro` skips every stage, and `dvc push`/`dvc pull` round-trip the data through the S3 server (moto).

The remote is the committed one (`s3://dvc/pfp`); its endpoint and keys come from the environment only
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import DVC_BUCKET

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from dvc_project import tiny_project  # noqa: E402 - scripts/ (shared with benchmarks/bench_noop_run_all.py)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STAGES = ("split", "train", "register", "promote", "validate")


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_dvc_repro_runs_the_pipeline_then_skips_everything_and_push_pull_round_trip(stack, s3_client, tmp_path):
    """repro runs every stage; a second repro runs none; push uploads to s3://dvc, pull restores the same data."""
    project = tiny_project(tmp_path / "project")
    env = {**os.environ, **stack.client_env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PFP_HOME": str(project / ".pfp"), "AWS_ENDPOINT_URL_S3": stack.s3_endpoint, "DVC_NO_ANALYTICS": "1"}
    for k in ("MLFLOW_TRACKING_URI", "PFP_CONFIG"):  # the embedded store of this project; the committed config
        env.pop(k, None)
    dvc = str(BIN / "dvc")
    run([str(BIN / "pfp"), "demo-data", "--n", "40"], project, env)
    run([dvc, "add", "-q", "data"], project, env)
    recorded = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]

    first = run([dvc, "repro"], project, env, timeout=900)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout, first.stdout[-3000:]
    assert json.loads((project / "reports" / "validate.json").read_text())["ok"] is True
    info = json.loads((project / "runs" / "training_info.json").read_text())
    assert info["data_version"] == recorded  # the DVC hash of data/ reached the training run

    second = run([dvc, "repro"], project, env, timeout=300)
    assert "Running stage" not in second.stdout, second.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout, second.stdout
    status = run([dvc, "status"], project, env)
    assert "up to date" in status.stdout, status.stdout

    run([dvc, "push"], project, env)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=DVC_BUCKET, Prefix="pfp/").get("Contents", [])]
    assert any(k.endswith(".dir") for k in keys), keys
    before = sorted(p.relative_to(project / "data").as_posix() for p in (project / "data").rglob("*") if p.is_file()
                    and not p.name.endswith(".cache"))
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    run([dvc, "pull", "data.dvc"], project, env)
    after = sorted(p.relative_to(project / "data").as_posix() for p in (project / "data").rglob("*") if p.is_file())
    assert after == before
    from pfp_mlops.adapters.dvc import dir_md5

    assert dir_md5(project / "data", project)[0] == recorded
