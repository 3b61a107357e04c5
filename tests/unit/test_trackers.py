"""The tracker fan-out of a training (services/trackers.py): MLflow first and authoritative, mirrors fail soft."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pfp_mlops.services.trackers import Trackers


class Recorder:
    """Stands in for MLflow's Tracker: records every call, hands out run ids."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on
        self.n = 0

    def start(self, name, *, parent_id=None, tags=None):
        self.n += 1
        self.calls.append(("start", name, parent_id))
        return f"run{self.n}"

    def __getattr__(self, method):
        def call(*args, **kwargs):
            if method == self.fail_on:
                raise RuntimeError(f"{method} broke")
            self.calls.append((method, *args))
            return f"{method}-result"
        return call


class Mirror(Recorder):
    name, label = "fake", "Fake"

    def start(self, run_id, name, *, parent_id, tags):
        if self.fail_on == "start":
            raise ConnectionError("service down\nsecond line")
        self.calls.append(("start", run_id, name, parent_id))
        return {run_id: {"pfp.fake_url": f"https://fake/{run_id}"}}

    def location(self):
        return {"url": "https://fake/run1"}


def test_every_call_reaches_mlflow_then_the_mirror_and_start_tags_land_on_the_mlflow_run():
    mlflow, mirror = Recorder(), Mirror()
    t = Trackers(mlflow, [mirror])
    parent = t.start("train", tags={"pfp.role": "study"})
    child = t.start("trial-0", parent_id=parent)
    t.params(child, {"lr0": 0.01})
    t.metrics(child, {"valid_map50": 0.5}, step=1)
    t.artifact(parent, Path("results.png"), "plots")
    t.end(child, "FINISHED")
    assert ("tags", "run1", {"pfp.fake_url": "https://fake/run1"}) in mlflow.calls
    assert [c[0] for c in mirror.calls] == ["start", "start", "params", "log", "artifact", "end"]
    assert mirror.calls[1] == ("start", "run2", "trial-0", "run1")
    assert t.download("run1", "", Path("x")) == "download-result"  # MLflow-only methods pass through
    assert t.info() == {"fake": {"url": "https://fake/run1"}}


def test_a_failing_mirror_warns_once_and_is_dropped_while_mlflow_goes_on(caplog):
    mlflow, mirror = Recorder(), Mirror(fail_on="start")
    t = Trackers(mlflow, [mirror])
    with caplog.at_level(logging.WARNING, logger="pfp.trackers"):
        parent = t.start("train")
        t.start("trial-0", parent_id=parent)
        t.metrics("run2", {"valid_map50": 0.5}, step=1)
        t.end("run2", "FINISHED")
    assert [r.getMessage() for r in caplog.records] == [
        "Fake: ConnectionError: service down — tracking goes on in MLflow only for this training"]
    assert [c[0] for c in mlflow.calls] == ["start", "start", "log", "end"]
    assert t.mirrors == [] and t.info() == {"fake": {"error": "ConnectionError: service down"}}


def test_mlflow_errors_still_stop_the_command():
    t = Trackers(Recorder(fail_on="log"), [Mirror()])
    with pytest.raises(RuntimeError, match="log broke"):
        t.metrics("run1", {"valid_map50": 0.5})


def test_trackers_config_requires_mlflow_and_knows_only_mlflow_and_wandb(tmp_path):
    from pfp_mlops.domain.errors import ConfigError
    from pfp_mlops.settings import PipelineConfig, load_config

    assert PipelineConfig().train.trackers == ["mlflow"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {trackers: [wandb, mlflow, wandb]}\n")
    assert load_config(cfg).train.trackers == ["wandb", "mlflow"]
    cfg.write_text("train: {trackers: [wandb]}\n")
    with pytest.raises(ConfigError, match="train.trackers: mlflow must be one of the trackers"):
        load_config(cfg)
    cfg.write_text("train: {trackers: [mlflow, tensorboard]}\n")
    with pytest.raises(ConfigError, match=r"train.trackers.1: Input should be 'mlflow' or 'wandb'"):
        load_config(cfg)
