"""The seed's `steps/` scripts and `notebooks/quickstart.ipynb`, run for real on one tiny project.

One module-scoped project: the five scripts run in order in fresh processes (the way the seed's manual runs
them), then the notebook executes in the same project (its `train()` resumes the finished study instead of
training again, its `register()` adds challengers): one training for both tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.reliability import write_cfg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STEPS = REPO / "steps"


def _script(root: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PFP_HOME": str(root / ".pfp")}
    return subprocess.run([sys.executable, str(STEPS / name), "--config", str(root / "cfg.yaml"), *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> dict[str, Any]:
    """The five scripts in order (train: config says 2 epochs, --set 3, --epochs 1), plus two gate outcomes."""
    root = tmp_path_factory.mktemp("steps-project")
    write_cfg(root / "cfg.yaml", train={"epochs": 2})
    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    t0 = time.time()
    for name, args in (("01_generate_splits.py", ("--demo",)),
                       ("02_train_model.py", ("--set", "train.epochs=3", "--epochs", "1", "--trials", "1")),
                       ("03_log_model.py", ()), ("04_promote_to_staging.py", ()),
                       ("05_validate_with_production.py", ("--json",))):
        runs[name] = _script(root, name, *args)
        if runs[name].returncode != 0:
            break
    # a refused promotion is an outcome (a value in the API) with the CLI's exit code
    runs["refused"] = _script(root, "04_promote_to_staging.py", "--version", "1", "--set",
                              "gates.promote.min_map50=1.0")
    runs["bad"] = _script(root, "04_promote_to_staging.py", "--set", "gates.promote.min_map50=2")
    print(f"steps scripts: {time.time() - t0:.1f}s")
    return {"root": root, "runs": runs}


def test_the_five_scripts_take_a_model_to_production_with_the_cli_exit_codes(scripted):
    """01–05 end with v1 in production; a refused promotion exits 10, a bad --set 2 (one
    line naming it); the training run's params hold the effective values (flags > --set > config)."""
    from mlflow import MlflowClient

    root, runs = scripted["root"], scripted["runs"]
    for name in ("01_generate_splits.py", "02_train_model.py", "03_log_model.py", "04_promote_to_staging.py",
                 "05_validate_with_production.py"):
        assert runs[name].returncode == 0, (name, runs[name].stdout, runs[name].stderr[-3000:])
    assert runs["01_generate_splits.py"].stdout.startswith("split ")
    assert "registered pfp-detector v1" in runs["03_log_model.py"].stdout
    assert runs["04_promote_to_staging.py"].stdout.strip() == "pfp-detector v1 -> staging"
    out = json.loads(runs["05_validate_with_production.py"].stdout)
    assert out["ok"] and out["exit_code"] == 0 and out["result"]["action"] == "promoted"
    assert out["result"]["production"] == 1
    assert runs["refused"].returncode == 10, runs["refused"].stderr[-2000:]
    assert runs["refused"].stdout.startswith("promote: refused: ")
    bad = runs["bad"]
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "pfp: error: --set gates.promote.min_map50=2: gates.promote.min_map50: Input should be less than or equal "
        "to 1")

    uri = f"sqlite:///{root / '.pfp' / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert c.get_model_version_by_alias("pfp-detector", "production").version in ("1", 1)
    exp = c.get_experiment_by_name("pfp-training")
    (parent,) = c.search_runs([exp.experiment_id], filter_string="tags.`pfp.role` = 'study'")
    p = parent.data.params
    assert (p["epochs"], p["trial_epochs"], p["n_trials"], p["device"]) == ("1", "1", "1", "cpu")
    assert p["overrides"] == "train.epochs=3; train.search.n_trials=1; train.epochs=1"


def test_quickstart_notebook_runs_through_the_api_and_shows_the_comparison(scripted):
    """The notebook executes on the tiny config (parameters from the environment) with the venv's own kernel:
    tables for the split, training, decisions, status and ledger, and the comparison picture of a rejected
    challenger; production stays v1."""
    import nbformat
    from nbclient import NotebookClient

    root = scripted["root"]
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    env = {"PFP_HOME": str(root / ".pfp"), "PFP_NOTEBOOK_PROJECT": str(root),
           "PFP_NOTEBOOK_CONFIG": str(root / "cfg.yaml")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    t0 = time.time()
    try:
        NotebookClient(nb, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(root)}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    print(f"notebook: {time.time() - t0:.1f}s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) >= 8  # split, training, register, promote, validate, challenger, comparison, status, ledger
    assert any("rock" in h and "images" in h for h in html)  # the split table
    assert any("challenger v" in h and "mAP50" in h for h in html)  # the comparison table
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the comparison picture
    assert any("ValidateResult (rejected)" in h for h in html)

    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.pfp' / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert c.get_model_version_by_alias("pfp-detector", "production").version in ("1", 1)
    stages = {int(v.version): v.tags.get("stage") for v in c.search_model_versions("name='pfp-detector'")}
    assert stages == {1: "production", 2: "rejected", 3: "rejected"}
