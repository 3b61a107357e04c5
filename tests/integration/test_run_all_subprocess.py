"""`pfp run-all --demo` as a user runs it: the console script in a fresh process on the embedded defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.helpers import write_config

pytestmark = pytest.mark.slow


def test_run_all_demo_end_to_end(workdir):
    """The whole chain runs from the console script, exits 0 and leaves a production model tagged production (the
    first deployment, under the default `decision: guarded`)."""
    pfp_bin = shutil.which("pfp") or str(Path(os.sys.executable).parent / "pfp")
    cfg = write_config(workdir / "tiny.yaml", train__epochs=1)
    env = {**os.environ, "PFP_HOME": str(workdir / ".pfp"), "PFP_CONFIG": str(cfg)}
    proc = subprocess.run([pfp_bin, "run-all", "--demo", "--json"], cwd=workdir, capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [s["step"] for s in out["result"]["steps"]] == ["split", "train", "register", "promote", "validate"]
    assert all(s["status"] == "ok" for s in out["result"]["steps"])
    # the first deployment is unchanged under the default `decision: guarded`: no champion, no interval, promoted
    validate = out["result"]["steps"][-1]["summary"]
    assert validate.startswith("promoted: production v1;") and "first deployment" in validate, validate
    # library warnings are noise on a CLI (MLflow's type-hint advice while logging the model, …): none reach stderr
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / '.pfp' / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = c.get_model_version_by_alias("pfp-detector", "production")
    assert c.get_model_version("pfp-detector", mv.version).tags["stage"] == "production"
    # the ledger recorded every lifecycle action
    exp = c.get_experiment_by_name("pfp-lifecycle")
    runs = c.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["pfp.action"] for r in runs) == ["promote", "register", "validate"]
    entry = next(r.data.tags for r in runs if r.data.tags["pfp.action"] == "validate")
    assert (entry["pfp.outcome"], entry["pfp.decision_mode"], entry["pfp.decided_by"]) == \
        ("promoted", "guarded", "first deployment")
