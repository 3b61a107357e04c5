"""The Optuna adapter's shared-study mechanics on a real SQLite storage: heartbeat → stale → reaped → re-queued
with the same params; the study attribute claim (first writer wins); the constant liar when workers may run."""

from __future__ import annotations

import time

import pytest

from pfp_mlops.settings import SearchConfig

pytestmark = pytest.mark.slow


def cfg(**parallel) -> SearchConfig:
    return SearchConfig.model_validate({
        "n_trials": 4, "pruner": "none",
        "parallel": {"heartbeat_interval_s": 1, "heartbeat_grace_s": 2, **parallel},
        "space": {"lr0": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}})


def test_a_trial_without_heartbeat_is_reaped_and_its_params_run_again(tmp_path):
    from pfp_mlops.adapters import tuner

    url = f"sqlite:///{tmp_path / 'o.db'}"
    dead = tuner.open_study(url, "s", cfg(), max_epochs=1, parallel=True)
    alive = tuner.open_study(url, "s", cfg(), max_epochs=1, parallel=True)
    t0 = dead.ask(baseline=False)
    t0.stop_heartbeat()  # the process "dies": no more beats, no tell
    t1 = alive.ask(baseline=False)  # a live trial keeps beating
    assert alive.reap() == []  # within the grace: nothing is stale
    time.sleep(3.2)
    reaped = alive.reap()
    assert [t.number for t in reaped] == [t0.number]
    states = {t.number: t.state for t in alive.trials()}
    assert states[t0.number] == "FAIL" and states[t1.number] == "RUNNING"  # the heartbeat thread kept t1 alive
    waiting = [t for t in alive.trials() if t.state == "WAITING"]
    assert len(waiting) == 1 and waiting[0].retried_from == (t0.number,)
    again = alive.ask(baseline=True)  # a re-run keeps its params and its own baseline flag
    assert again.retry_of == t0.number and again.params == t0.params and not again.baseline
    alive.tell(again, "COMPLETE", 0.5)
    alive.tell(t1, "COMPLETE", 0.4)
    assert alive.reap() == []


def test_the_first_claim_wins(tmp_path):
    from pfp_mlops.adapters import tuner

    url = f"sqlite:///{tmp_path / 'o.db'}"
    a = tuner.open_study(url, "s", cfg(), max_epochs=1)
    b = tuner.open_study(url, "s", cfg(), max_epochs=1)
    assert a.claim_attr("parent", "run-a") == "run-a"
    assert b.claim_attr("parent", "run-b") == "run-a"
    assert b.attrs()["parent"] == "run-a"


def test_constant_liar_is_on_when_several_processes_may_sample(tmp_path):
    from pfp_mlops.adapters import tuner

    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert tuner.open_study(url, "a", cfg(), max_epochs=1).constant_liar is False
    assert tuner.open_study(url, "b", cfg(), max_epochs=1, parallel=True).constant_liar is True
    assert tuner.open_study(url, "c", cfg(constant_liar=True), max_epochs=1).constant_liar is True


def test_a_dropped_connection_is_retried_also_inside_optunas_commit_error():
    """Optuna raises StorageInternalError from the driver's OperationalError when a commit fails (a PostgreSQL
    restart): that is a disconnect to ride through; a constraint violation is not."""
    import sqlalchemy.exc as sa
    from optuna.exceptions import StorageInternalError

    from pfp_mlops.adapters import optuna_storage

    def wrapped(cause: BaseException) -> BaseException:
        try:
            raise StorageInternalError("An exception is raised during the commit.") from cause
        except StorageInternalError as e:
            return e

    dropped = sa.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
    assert optuna_storage.is_disconnect(wrapped(dropped))
    assert not optuna_storage.is_disconnect(wrapped(sa.IntegrityError("INSERT", {}, Exception("duplicate key"))))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise wrapped(dropped)
        return "ok"

    assert optuna_storage.call_with_reconnect(flaky, within_s=10, what="test") == "ok" and len(calls) == 3


def test_the_sweep_ends_a_trial_run_left_running_by_a_dead_reaper(tmp_path):
    """Optuna says FAIL (another reaper failed it, then died before MLflow), MLflow still says RUNNING: `reap`
    with the sweep ends that run FAILED with the reason; a live trial's run and another study's run stay open."""
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from pfp_mlops.adapters import tracking, tuner
    from pfp_mlops.services.train_workers import reap

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    tracker = tracking.Tracker(client, client.create_experiment("t", artifact_location=(tmp_path / "a").as_uri()))
    study = tuner.open_study(f"sqlite:///{tmp_path / 'o.db'}", "s", cfg(), max_epochs=1)
    parent = tracker.start("parent", tags={"pfp.role": "study", "pfp.study_name": "s"})
    runs = {}
    for name in ("dead", "alive"):
        t = study.ask(baseline=False)
        runs[name] = (t, tracker.start(f"trial-{t.number}", parent_id=parent, tags={
            "pfp.role": "trial", "pfp.study_name": "s", "pfp.trial_number": t.number}))
        t.set_attr("mlflow_run_id", runs[name][1])
        t.set_attr("worker", name)
    other = tracker.start("trial-0", tags={"pfp.role": "trial", "pfp.study_name": "s", "pfp.trial_number": 0})
    study.tell(runs["dead"][0], "FAIL")
    s = SimpleNamespace(study=study, tracker=tracker, study_name="s", worker="reaper",
                        sc=SimpleNamespace(parallel=SimpleNamespace(heartbeat_grace_s=2)),
                        ctx=SimpleNamespace(say=lambda m: None))
    assert reap(s, sweep=False) == []  # nothing stale: without the sweep MLflow is not even read
    fixed = reap(s, sweep=True)
    assert [(f["trial"], f["status"]) for f in fixed] == [(runs["dead"][0].number, "FAILED")]
    dead = client.get_run(runs["dead"][1])
    assert dead.info.status == "FAILED" and dead.data.tags["pfp.reaped_by"] == "reaper"
    assert "Optuna trial" in dead.data.tags["pfp.error"]
    assert client.get_run(runs["alive"][1]).info.status == "RUNNING"
    assert client.get_run(other).info.status == "RUNNING"  # not this study's trial run (no matching run id)
    runs["alive"][0].stop_heartbeat()
