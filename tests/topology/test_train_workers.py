"""`pfp train --worker` on one study shared through PostgreSQL, tracked on an MLflow server: real processes.

The stack of tests/servers.py (PostgreSQL, moto S3, `mlflow server`) on loopback; every `pfp` is a fresh console-
script process configured by environment variables only, as on several machines. Trainings are tiny (24 demo
images at 64 px, 1 epoch per trial); the heartbeat runs every second with a 4 s grace so a killed worker's trial is
found stale within seconds. Each test has its own Optuna database and study name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.helpers import pfp

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GRACE_S = 4
CFG = {
    "demo": {"n_images": 24, "imgsz": 64, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": 1, "imgsz": 64, "batch": 8, "plots": False,
              "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 3, "pruner": "none",
                         "parallel": {"heartbeat_interval_s": 1, "heartbeat_grace_s": GRACE_S, "poll_s": 0.5,
                                      "stale_retries": 1, "reconnect_s": 60},
                         "space": {"lr0": {"type": "float", "low": 0.001, "high": 0.02, "log": True}}}},
    "evaluation": {"imgsz": 64, "batch": 16},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One generated dataset and split for the module (in-process: no server involved)."""
    root = tmp_path_factory.mktemp("workers-project")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CFG), encoding="utf-8")
    old = os.getcwd()
    os.chdir(root)
    try:
        for cmd in ("demo-data", "split"):
            r = pfp(cmd, "--config", str(cfg))
            assert r.exit_code == 0, r.output
    finally:
        os.chdir(old)
    return root


@pytest.fixture
def study(stack, project):
    """A fresh Optuna database on the stack's PostgreSQL, a fresh study name, the environment of a worker."""
    import psycopg2

    base = f"postgresql://mlflow@127.0.0.1:{stack.pg_port}"
    db = f"optuna_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(f"{base}/postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    storage = f"postgresql+psycopg2://mlflow@127.0.0.1:{stack.pg_port}/{db}"
    name = f"workers-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **stack.client_env(), "PFP_CONFIG": str(project / "cfg.yaml"),
           "PFP_OPTUNA_STORAGE": storage, "PFP_MODEL_NAME": "pfp-workers", "PFP_HOME": str(project / ".pfp"),
           "PFP_LOG_LEVEL": "INFO"}
    return {"storage": storage, "name": name, "env": env, "project": project}


def start(study, *args, worker_id: str):
    env = {**study["env"], "PFP_WORKER_ID": worker_id}
    argv = [str(BIN / "pfp"), "train", *args, "--json"]
    return subprocess.Popen(argv, cwd=study["project"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def cfg_for(study, n_trials: int) -> list[str]:
    """--config with this test's study name (the module's dataset), and --trials for the budget."""
    cfg = json.loads(json.dumps(CFG))
    cfg["train"]["search"]["study_name"] = study["name"]
    path = study["project"] / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return ["--config", str(path), "--trials", str(n_trials)]


def optuna_trials(study):
    import optuna

    try:
        return optuna.load_study(study_name=study["name"], storage=study["storage"]).get_trials(deepcopy=False)
    except KeyError:  # the workers have not created the study yet
        return []


def study_runs(stack, study):
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=stack.tracking_uri)
    exp = c.get_experiment_by_name("pfp-training")
    return c, [r for r in c.search_runs([exp.experiment_id], max_results=1000)
               if r.data.tags.get("pfp.study_name") == study["name"]]


def wait_for(cond, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker exited ({p.returncode}) while waiting for {what}: "
                                     f"{p.stderr.read()[-3000:] if p.stderr else ''}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_share_the_budget_then_train_finishes_with_the_best(stack, study):
    """Two workers started together run exactly n_trials between them, each number once, every trial a child run
    of the study's one parent run (optuna.trial tag); `pfp train` then picks the best of both and closes it all."""
    args = cfg_for(study, 3)
    procs = [start(study, "--worker", *args, worker_id=w) for w in ("w1", "w2")]
    results = [finish(p) for p in procs]
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    trials = optuna_trials(study)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    ran = [json.loads(out)["result"]["trials_run"] for _c, out, _e in results]
    assert sorted(ran[0] + ran[1]) == [0, 1, 2] and ran[0] and ran[1], ran  # both worked, no number twice
    assert {t.user_attrs["worker"] for t in trials} == {"w1", "w2"}

    client, runs = study_runs(stack, study)
    parents = [r for r in runs if r.data.tags.get("pfp.role") == "study"]
    children = [r for r in runs if r.data.tags.get("pfp.role") == "trial"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1, 2]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["pfp.worker"] for r in children} == {"w1", "w2"}

    code, out, err = finish(start(study, *args, worker_id="finisher"))
    assert code == 0, err[-3000:]
    result = json.loads(out)["result"]
    best = max((t for t in trials), key=lambda t: (t.value, -t.number))
    assert result["study"]["best_trial"] == best.number and result["run_id"] == parents[0].info.run_id
    assert len(optuna_trials(study)) == 3  # the finisher trained nothing more
    info = json.loads((study["project"] / "runs" / "training_info.json").read_text())
    assert info["best_trial"] == best.number and Path(info["weights"]).is_file()
    _, runs = study_runs(stack, study)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert client.get_run(parents[0].info.run_id).data.params["best_trial"] == str(best.number)


def test_a_killed_worker_is_reaped_and_the_study_completes(stack, study):
    """SIGKILL one of two workers mid-trial: after the heartbeat grace the other fails that trial (Optuna FAIL,
    MLflow FAILED with the reason), re-runs its params, and the study completes; no run is left RUNNING."""
    args = cfg_for(study, 3)
    victim = start(study, "--worker", *args, worker_id="victim")
    survivor = start(study, "--worker", *args, worker_id="survivor")
    # A trial of the victim that is training (its MLflow child run exists): then kill -9 its whole process.
    doomed = wait_for(lambda: next((t for t in optuna_trials(study) if t.state.name == "RUNNING"
                                    and t.user_attrs.get("worker") == "victim"
                                    and t.user_attrs.get("mlflow_run_id")), None),
                      240, "a running trial of the victim", procs=[victim])
    time.sleep(1.0)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()

    code, out, err = finish(survivor)
    assert code == 0, err[-3000:]
    assert time.monotonic() - killed_at >= GRACE_S  # the stale trial could only be failed after the grace
    trials = {t.number: t for t in optuna_trials(study)}
    assert trials[doomed.number].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == doomed.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == doomed.params and retries[0].user_attrs["worker"] == "survivor"
    counted = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(counted) == 3  # the budget: the stale trial does not count, its re-run does
    result = json.loads(out)["result"]
    assert [r["trial"] for r in result["reaped"]] == [doomed.number]

    client, runs = study_runs(stack, study)
    dead = client.get_run(doomed.user_attrs["mlflow_run_id"])
    assert dead.info.status == "FAILED"
    assert "no heartbeat" in dead.data.tags["pfp.error"] and dead.data.tags["pfp.reaped_by"] == "survivor"
    assert not [(r.info.run_name, r.data.tags.get("pfp.role")) for r in runs if r.info.status == "RUNNING"]

    code, out, _ = finish(start(study, "--status", *args, worker_id="ops"))
    status = json.loads(out)["result"]["status"]
    assert code == 0 and status["finished"] == 3 and status["retried"] == [doomed.number]
    assert {w["worker"] for w in status["workers"]} == {"victim", "survivor"}
    code, out, _ = finish(start(study, "--reap", *args, worker_id="ops"))  # nothing left to reap: idempotent
    assert code == 0 and json.loads(out)["result"]["reaped"] == []


def test_a_postgres_restart_between_trials_does_not_stop_the_worker(stack, study):
    """PostgreSQL restarts (fast shutdown: connections cut, 3 s down) right after the first trial completes: the
    worker's calls retry (Optuna storage and MLflow server alike), its pooled connections are pre-pinged and
    re-opened, and it finishes the study."""
    args = cfg_for(study, 2)
    worker = start(study, "--worker", *args, worker_id="steady")
    wait_for(lambda: any(t.state.name == "COMPLETE" for t in optuna_trials(study)), 240, "the first trial",
             procs=[worker])
    down = stack.restart_postgres(down_s=3.0)
    code, out, err = finish(worker)
    assert code == 0, err[-3000:]
    assert down >= 3.0
    # it did meet the outage: a storage call retried, or the next trial's heartbeat missed a beat
    assert "retrying" in err or "not written" in err, err[-3000:]
    assert [t.state.name for t in optuna_trials(study)] == ["COMPLETE", "COMPLETE"]
    assert json.loads(out)["result"]["trials_run"] == [0, 1]
