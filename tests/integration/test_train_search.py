"""`pfp train` as an Optuna study: real tiny YOLO trainings (32 images, 64 px, 1–2 epochs per trial), a real
SQLite MLflow store and a real SQLite Optuna storage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import pfp, pfp_json, write_config

pytestmark = pytest.mark.slow

BASE = {
    "demo": {"n_images": 32, "imgsz": 64, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": 2, "imgsz": 64, "batch": 8, "plots": False,
              "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 3, "pruner": "none",
                         "space": {"lr0": {"type": "float", "low": 0.001, "high": 0.02, "log": True},
                                   "batch": {"type": "categorical", "choices": [4, 8]}}}},
    "evaluation": {"imgsz": 64, "batch": 16},
}


def project(root: Path, **overrides) -> Path:
    cfg = write_config(root / "cfg.yaml", BASE, **overrides)
    assert pfp("demo-data", "--config", str(cfg)).exit_code == 0
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    return cfg


def mlflow_client(home: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def all_runs(home: Path) -> list:
    c = mlflow_client(home)
    return [r for e in c.search_experiments() for r in c.search_runs([e.experiment_id])]


def load_study(info: dict, storage: str):
    import optuna

    return optuna.load_study(study_name=info["study_name"], storage=storage)


def sqlite(home: Path) -> str:
    return f"sqlite:///{home.resolve() / 'optuna.db'}"


def test_study_tracks_every_trial_as_a_child_run_and_keeps_the_best(workdir, monkeypatch):
    """Three trials → one parent run and three closed child runs with params, states and per-epoch metrics; the
    best trial's weights, results.csv and plots on the parent; training_info.json names the study and best trial.
    Drawing the plots (Ultralytics' check_font among others) attempts no network connection."""
    import socket

    cfg = project(workdir, train__plots=True)
    attempts = []

    def no_network(self, address, *a, **k):
        attempts.append(address)
        raise OSError("network disabled in this test")

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", no_network)
        m.setattr(socket.socket, "connect_ex", no_network)
        code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    assert attempts == []
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    study = load_study(info, sqlite(workdir / ".pfp"))
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE"] * 3
    assert info["best_trial"] == study.best_trial.number
    assert info["best_params"] == study.best_trial.params
    assert info["study"]["best_value"] == pytest.approx(study.best_value)
    assert info["valid_metrics"]["map50"] == pytest.approx(study.best_value)
    assert Path(info["weights"]).is_file() and info["split_fingerprint"]
    assert study.trials[0].params == {} and set(study.trials[1].params) == {"lr0", "batch"}  # baseline, then sampled
    assert out["result"]["run_id"] == info["run_id"]

    runs = all_runs(workdir / ".pfp")  # Ultralytics' own MLflow callback made none: only pfp's four runs
    parent = next(r for r in runs if r.info.run_id == info["run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 4 and len(children) == 3
    assert {r.info.status for r in runs} == {"FINISHED"}
    c = mlflow_client(workdir / ".pfp")
    for child in children:
        assert child.data.tags["pfp.trial_state"] == "COMPLETE"
        assert {"epochs", "imgsz", "batch"} <= set(child.data.params)
        assert len(c.get_metric_history(child.info.run_id, "valid_map50")) == 2
        assert child.data.metrics["duration_s"] > 0
    sampled = [r for r in children if r.data.tags["pfp.baseline"] == "false"]
    assert all("lr0" in r.data.params and r.data.params["optimizer"] == "SGD" for r in sampled)
    assert parent.data.params["best_trial"] == str(info["best_trial"])
    assert parent.data.metrics["best_valid_map50"] == pytest.approx(study.best_value)
    arts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"weights", "plots", "results.csv", "training_info.json"} <= arts
    plots = {Path(a.path).name for a in c.list_artifacts(parent.info.run_id, "plots")}
    assert {"results.png", "confusion_matrix.png"} <= plots and any("PR_curve" in p for p in plots)


def test_pruning_stops_trials_cleanly_and_the_study_still_returns_the_best(workdir):
    """With an aggressive pruner every trial after the first is pruned at its first epoch; each pruned trial's run
    is closed (FINISHED, state PRUNED) and the best complete trial is the output."""
    cfg = project(workdir, train__search__pruner="threshold", train__search__pruner_threshold=0.99,
                  train__search__pruner_warmup_epochs=0, train__search__pruner_startup_trials=1)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    study = load_study(info, sqlite(workdir / ".pfp"))
    states = [t.state.name for t in study.trials]
    assert states[0] == "COMPLETE" and states.count("PRUNED") >= 1
    assert info["best_trial"] == 0 and out["result"]["study"]["pruned"] == states.count("PRUNED")
    c = mlflow_client(workdir / ".pfp")
    pruned_runs = [r for r in all_runs(workdir / ".pfp") if r.data.tags.get("pfp.trial_state") == "PRUNED"]
    assert len(pruned_runs) == states.count("PRUNED")
    for r in pruned_runs:
        assert r.info.status == "FINISHED" and r.info.end_time
        assert len(c.get_metric_history(r.info.run_id, "valid_map50")) == 1  # stopped after epoch 1 of 2


def test_resume_after_interruption_keeps_earlier_trials_and_adds_new_ones(workdir, monkeypatch):
    """Ctrl-C in trial 2 → exit 130, runs end KILLED, the trial is FAIL (interrupted); the next `pfp train`
    resumes the study under the same parent run: trial 1 is kept, the interrupted one does not count, a new trial
    completes the budget."""
    from pfp_mlops.adapters import yolo

    cfg = project(workdir, train__search__n_trials=2)
    real, calls = yolo.train_losses, []

    def interrupt_in_second_trial(trainer):
        calls.append(1)
        if len(calls) == 3:  # trial 1 has 2 epochs; the first epoch of trial 2
            raise KeyboardInterrupt
        return real(trainer)

    monkeypatch.setattr(yolo, "train_losses", interrupt_in_second_trial)
    r = pfp("train", "--config", str(cfg))
    assert r.exit_code == 130
    runs = all_runs(workdir / ".pfp")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED", "KILLED"]  # trial 0, trial 1, parent

    monkeypatch.setattr(yolo, "train_losses", real)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    study = load_study(info, sqlite(workdir / ".pfp"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[1].user_attrs["interrupted"] is True
    runs = all_runs(workdir / ".pfp")
    # One parent run per study: the resumed run re-opens the interrupted one (issue 16), its trials beside the first
    parents = [r for r in runs if r.data.tags.get("pfp.role") == "study"]
    assert len(runs) == 4 and len(parents) == 1 and parents[0].info.run_id == info["run_id"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs if r.data.tags.get("pfp.role") == "trial"} == {
        info["run_id"]}
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_two_processes_share_one_study(workdir):
    """Two `pfp train` processes on one SQLite Optuna storage complete one study together: every trial is
    tracked by exactly one of them, and the budget holds (at most one trial over when both ask at once)."""
    cfg = project(workdir, train__epochs=1, train__search__n_trials=4, train__search__study_name="shared")
    storage = f"sqlite:///{workdir / 'shared-optuna.db'}"
    pfp_bin = shutil.which("pfp") or str(Path(sys.executable).parent / "pfp")
    procs = []
    for i in (1, 2):
        env = {**os.environ, "PFP_HOME": str(workdir / f"home{i}"), "PFP_OPTUNA_STORAGE": storage}
        procs.append(subprocess.Popen([pfp_bin, "train", "--config", str(cfg), "--json"], cwd=workdir, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 4 <= len(finished) <= 5 and len(study.trials) == len(finished)
    tracked = {}
    for i in (1, 2):
        for r in all_runs(workdir / f"home{i}"):
            if r.data.tags.get("pfp.role") == "trial":
                tracked[int(r.data.tags["pfp.trial_number"])] = i
                assert r.info.status == "FINISHED"
    assert sorted(tracked) == [t.number for t in study.trials]
    best = json.loads(outs[-1][0])["result"]["study"]["best_trial"]
    assert best == study.best_trial.number or json.loads(outs[0][0])["result"]["study"]["best_trial"] == best


def test_a_crashed_trial_fails_alone_and_the_study_continues(workdir, monkeypatch):
    """A trial that crashes (here: a simulated out-of-memory error) is FAIL with its error, its run FAILED; the
    next trial completes and becomes the output."""
    from pfp_mlops.adapters import yolo

    cfg = project(workdir, train__epochs=1, train__search__n_trials=2)
    real, calls = yolo.train, []

    def crash_first(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kw)

    monkeypatch.setattr(yolo, "train", crash_first)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    study = load_study(info, sqlite(workdir / ".pfp"))
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"] and info["best_trial"] == 1
    assert "out of memory" in study.trials[0].user_attrs["error"]
    failed = [r for r in all_runs(workdir / ".pfp") if r.data.tags.get("pfp.trial_state") == "FAIL"]
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert "out of memory" in failed[0].data.tags["pfp.error"]


def test_every_trial_failing_exits_1_with_the_last_error(workdir, monkeypatch):
    """When no trial completes, `pfp train` exits 1 with one line naming the last error; all runs are closed."""
    from pfp_mlops.adapters import yolo

    cfg = project(workdir, train__search__n_trials=2)

    def crash(**kw):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(yolo, "train", crash)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 1
    assert out["error"]["type"] == "TrainingFailed"
    assert "2 failed" in out["error"]["message"] and "out of memory" in out["error"]["message"]
    runs = all_runs(workdir / ".pfp")
    assert sorted(r.info.status for r in runs) == ["FAILED"] * 3


def test_time_budget_stops_the_search_not_the_command(workdir):
    """A study whose time budget is already spent still yields a model: its first trial stops after one epoch
    and no further trial starts."""
    cfg = project(workdir, train__search__timeout_s=0.01)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    st = out["result"]["study"]
    assert st["trials"] == 1 and st["complete"] == 1 and out["result"]["epochs"] == 1


def test_retrain_best_ships_the_retrained_weights(workdir):
    """With short search trials (trial_epochs) and retrain_best, the best params are retrained for train.epochs in
    a `retrain-best` child run, whose weights and metrics become the output."""
    cfg = project(workdir, train__search__n_trials=2, train__search__trial_epochs=1, train__search__retrain_best=True)
    code, out = pfp_json("train", "--config", str(cfg))
    assert code == 0, out
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    assert info["epochs"] == 2 and info["study"]["retrained_run_id"]
    runs = {r.info.run_id: r for r in all_runs(workdir / ".pfp")}
    retrain = runs[info["study"]["retrained_run_id"]]
    assert retrain.data.tags["pfp.role"] == "retrain" and retrain.info.status == "FINISHED"
    assert retrain.data.tags["mlflow.parentRunId"] == info["run_id"]
    assert retrain.data.params["epochs"] == "2"
