"""Weights & Biases beside MLflow (`train.trackers: [mlflow, wandb]`): real tiny trainings (16 images, 64 px),
W&B in offline mode read back from its own run files, a W&B server that does not answer, and wandb not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import pfp, pfp_json, write_config
from tests.reliability import free_port
from tests.wandb_records import offline_runs

pytestmark = pytest.mark.slow

KEY = "SENTINEL-wandb-0f3c9a" + "0" * 19  # a 40-character W&B key that must never be printed or stored

BASE = {
    "demo": {"n_images": 16, "imgsz": 64, "seed": 0},
    "split": {"allow_missing_classes": True, "ratios": {"train": 0.5, "valid": 0.25, "test": 0.25}},
    "train": {"epochs": 2, "imgsz": 64, "batch": 4, "plots": False, "trackers": ["mlflow", "wandb"],
              "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 1, "pruner": "none", "space": {}}},
    "evaluation": {"imgsz": 64, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}


def project(root: Path, **overrides) -> Path:
    cfg = write_config(root / "cfg.yaml", BASE, **overrides)
    assert pfp("demo-data", "--config", str(cfg)).exit_code == 0
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    return cfg


def mlflow_runs(home: Path) -> list:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri)
    return [r for e in c.search_experiments() for r in c.search_runs([e.experiment_id])], c


def test_offline_wandb_mirrors_the_study_params_epochs_states_and_plots(workdir, monkeypatch):
    """Two trials (the baseline completes, a sampled one crashes): three W&B runs in one group named after the
    study — the study run and one per trial — with the MLflow runs' params, the per-epoch VALID metrics at the
    same steps, the trial states, the best trial's summary and the plots as images; the offline folder is on the
    MLflow parent run and in training_info.json; the API key is in no output and no file."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_PROJECT", "pfp-tests")
    cfg = project(workdir, train__plots=True, train__search={
        "n_trials": 2, "pruner": "none", "space": {"optimizer": {"type": "categorical", "choices": ["NoSuchOpt"]}}})
    r = pfp("train", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert KEY not in r.output
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    assert info["study"]["complete"] == 1 and info["study"]["fail"] == 1, r.output
    assert "wandb" in info, r.output
    where = info["wandb"]
    assert where["mode"] == "offline" and where["project"] == "pfp-tests" and where["group"] == info["study_name"]
    assert Path(where["dir"]).is_dir() and Path(where["dir"]).parent == workdir / "runs" / "wandb"

    runs, client = mlflow_runs(workdir / ".pfp")
    parent = next(x for x in runs if x.info.run_id == info["run_id"])
    assert parent.data.tags["pfp.wandb_dir"] == where["dir"]
    assert parent.data.tags["pfp.wandb_run_id"] == where["run_id"]
    trials = {x.data.tags["pfp.trial_number"]: x for x in runs if x.data.tags.get("pfp.role") == "trial"}

    wb = {x.job_type + ":" + x.name.rsplit("/", 1)[-1]: x for x in offline_runs(workdir / "runs" / "wandb")}
    assert sorted(wb) == ["study:" + parent.info.run_name, "trial:trial-0", "trial:trial-1"]
    assert {x.group for x in wb.values()} == {info["study_name"]}
    study = wb["study:" + parent.info.run_name]
    assert study.id == where["run_id"] and study.exit_code == 0
    # the same params as MLflow's runs (MLflow keeps strings)
    for number, mrun in trials.items():
        w = wb[f"trial:trial-{number}"]
        assert w.config["mlflow_run_id"] == mrun.info.run_id and w.config["mlflow_parent_run_id"] == info["run_id"]
        for k, v in mrun.data.params.items():
            assert str(w.config[k]) == v, (k, w.config[k], v)
    for k in ("n_trials", "study_name", "pruner", "epochs"):
        assert str(study.config[k]) == parent.data.params[k]
    # per-epoch metrics at MLflow's steps, with MLflow's values
    done = wb["trial:trial-0"]
    hist = {h["_step"]: h for h in done.history if "valid_map50" in h}
    mlflow_hist = client.get_metric_history(trials["0"].info.run_id, "valid_map50")
    assert sorted(hist) == sorted(m.step for m in mlflow_hist) == [1, 2]
    for m in mlflow_hist:
        assert hist[m.step]["valid_map50"] == pytest.approx(m.value)
    assert "train_box_loss" in hist[2]
    # trial states: summary and run tag; the crash's error; exit codes
    assert done.summary["trial_state"] == "COMPLETE" and done.exit_code == 0
    crashed = wb["trial:trial-1"]
    assert crashed.summary["trial_state"] == "FAIL" and "NoSuchOpt" in crashed.summary["error"]
    assert crashed.exit_code == 1
    # the best trial's summary on the study run, and the plots as images
    assert study.summary["best_valid_map50"] == pytest.approx(parent.data.metrics["best_valid_map50"])
    assert study.summary["best_trial"] == 0 and study.summary["trials_failed"] == 1
    images = {k.split("/")[1] for k, v in study.summary.items() if k.startswith("plots/") and v == "image-file"}
    assert "results" in images, sorted(study.summary)
    assert list(Path(where["dir"]).glob("files/media/images/plots/results_*.png"))

    # Resuming the study (one more trial) re-opens the same MLflow parent run: this process gets its own W&B study
    # run for it, in the same group, and the parent's tags point at the newest one.
    cfg2 = write_config(workdir / "cfg2.yaml", BASE, train__plots=True, train__search={
        "n_trials": 3, "pruner": "none", "space": {"optimizer": {"type": "categorical", "choices": ["NoSuchOpt"]}}})
    r = pfp("train", "--config", str(cfg2))
    assert r.exit_code == 0, r.output
    info2 = json.loads((workdir / "runs" / "training_info.json").read_text())
    assert info2["run_id"] == info["run_id"]
    after = offline_runs(workdir / "runs" / "wandb")
    assert len(after) == 5 and {x.group for x in after} == {info["study_name"]}
    resumed = next(x for x in after if x.name == f"{info['study_name']}/resumed")
    assert resumed.job_type == "study" and resumed.config["mlflow_run_id"] == info["run_id"]
    assert resumed.id == info2["wandb"]["run_id"] != where["run_id"]
    assert next(x for x in after if x.name.endswith("/trial-2")).summary["trial_state"] == "FAIL"
    runs, _ = mlflow_runs(workdir / ".pfp")
    assert next(x for x in runs if x.info.run_id == info["run_id"]).data.tags["pfp.wandb_run_id"] == resumed.id

    hits = [str(p) for p in workdir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert hits == []


def test_an_unreachable_wandb_is_one_warning_and_the_model_still_registers(workdir, monkeypatch):
    """WANDB_MODE=online against a port where nothing listens: `wandb.init` gives up after init_timeout_s, one
    warning line says so, the training completes in MLflow and `pfp register` registers it."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    cfg = project(workdir, train__epochs=1, train__wandb={"init_timeout_s": 3})
    r = pfp("train", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.stderr.splitlines() if "W&B" in ln]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "MLflow only" in warnings[0], r.stderr
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith("wandb:")], r.stderr  # the SDK stays quiet
    assert KEY not in r.output
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    assert "error" in info["wandb"] and "wandb_dir" not in json.dumps(info)
    code, out = pfp_json("register", "--config", str(cfg))
    assert code == 0, out
    assert out["result"]["version"] == 1
    assert KEY not in json.dumps(out)


def test_wandb_requested_but_not_installed_is_exit_2_with_the_install_line(workdir):
    """A real `pfp train` process in which `import wandb` fails: exit 2 naming the extra, before any MLflow run or
    Optuna study is written."""
    cfg = project(workdir)
    env = {**os.environ, "PFP_HOME": str(workdir / ".pfp")}
    code = ("import sys; sys.modules['wandb'] = None\n"  # what Python does for a package that is not installed
            "from pfp_mlops.cli.app import main\n"
            f"sys.argv = ['pfp', 'train', '--config', {str(cfg)!r}]\nmain()")
    p = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "pfp: error: train.trackers includes wandb, but the wandb package is not installed: "
        "pip install 'pfp-mlops[wandb]'"]
    assert not (workdir / ".pfp" / "optuna.db").exists()
    assert not (workdir / "runs" / "training_info.json").exists()
