"""Secrets never leave: with sentinel values in AWS_SECRET_ACCESS_KEY, MLFLOW_TRACKING_PASSWORD, the password of
the tracking URI (`http://user:password@host`), the alert webhook URL (a bearer credential) and WANDB_API_KEY (the
training also tracked in Weights & Biases, offline), every command runs
against an MLflow server — succeeding and failing ones, with --json, with PFP_DEBUG=1 — and afterwards the
sentinels appear in no stdout or stderr, and in no byte of any file: the project (split files, runs/,
training_info.json), PFP_HOME (logs/pfp.log, alerts.jsonl, caches, optuna.db) and the server's store and artifact
folder (every MLflow param, tag, metric, run and ledger artifact, model file).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import pfp
from tests.reliability import free_port, in_project, shared_server, write_cfg

pytestmark = pytest.mark.slow

AWS = "SENTINEL-aws-6b1f0c"
PASSWORD = "SENTINEL-mlflow-91d2e7"
URI_PASSWORD = "SENTINEL-uri-33a8c4"
HOOK = "SENTINEL-hook-e0c5a1"
WANDB_KEY = "SENTINEL-wandb-5d7e21" + "0" * 19  # W&B keys are 40 characters
SENTINELS = (AWS, PASSWORD, URI_PASSWORD, HOOK, WANDB_KEY, "SENTINEL-")


def _leaks(text: str) -> list[str]:
    return [s for s in SENTINELS if s in text]


def _files_with_sentinels(*roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and b"SENTINEL-" in p.read_bytes():
                hits.append(str(p))
    return hits


def test_no_command_prints_logs_or_stores_a_secret(tmp_path_factory, tmp_path):
    server = shared_server(tmp_path_factory)
    root = tmp_path / "p"
    root.mkdir()
    cfg = write_cfg(root / "cfg.yaml", train={"trackers": ["mlflow", "wandb"]})
    dead = free_port()
    env = {
        "MLFLOW_TRACKING_URI": server.uri.replace("http://", f"http://pfp-user:{URI_PASSWORD}@"),
        "MLFLOW_TRACKING_USERNAME": "pfp-user",
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
        "AWS_ACCESS_KEY_ID": "pfp-key-id",
        "AWS_SECRET_ACCESS_KEY": AWS,
        "PFP_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{dead}/services/T000/{HOOK}",
        "PFP_MODEL_NAME": "secrets-model",
        "PFP_LOG_LEVEL": "DEBUG",
        "WANDB_API_KEY": WANDB_KEY,
        "WANDB_MODE": "offline",  # W&B writes its run files under runs/wandb: scanned below like every other file
    }
    c = ["--config", str(cfg)]
    steps: list[tuple[list[str], dict[str, str], int]] = [
        (["demo-data", *c], {}, 0),
        (["split", *c], {}, 0),
        (["train", *c], {}, 0),
        (["register", *c, "--json"], {}, 0),
        (["promote", *c], {}, 0),
        (["validate", *c, "--json"], {}, 0),
        (["register", *c], {}, 0),
        (["promote", *c], {"PFP_DEBUG": "1"}, 0),
        (["validate", *c], {}, 10),  # the same weights again: rejected, alert to the (dead) webhook
        (["rollback", *c], {"PFP_DEBUG": "1"}, 2),  # no previous production yet
        (["rollback", "--to-version", "2", "--force", *c, "--json"], {}, 0),  # alert to the dead webhook
        (["rollback", "--to-version", "runs:/x/model", *c, "--json"], {"PFP_DEBUG": "1"}, 2),
        (["promote", "--version", "99", *c, "--json"], {"PFP_DEBUG": "1"}, 2),
        (["status", *c], {}, 0),
        (["status", *c, "--json"], {"PFP_DEBUG": "1"}, 0),
        (["history", *c, "--json"], {}, 0),
        (["repair", *c], {}, 0),
        (["doctor", "--no-gpu", *c], {}, None),
        (["doctor", "--no-gpu", *c, "--json"], {"PFP_DEBUG": "1"}, None),
        (["run-all", "--until", "split", *c, "--json"], {}, 0),
        (["status", *c], {"MLFLOW_TRACKING_URI": f"http://pfp-user:{URI_PASSWORD}@127.0.0.1:{dead}"}, 3),
        (["status", *c, "--json"], {"MLFLOW_TRACKING_URI": f"http://pfp-user:{URI_PASSWORD}@127.0.0.1:{dead}",
                                    "PFP_DEBUG": "1"}, 3),
        (["status"], {"MLFLOW_TRACKING_URI": f"gopher://pfp-user:{URI_PASSWORD}@x", "PFP_DEBUG": "1"}, 2),
        (["split", "--config", "missing.yaml"], {"PFP_DEBUG": "1"}, 2),
    ]
    outputs = []
    for args, extra, code in steps:
        with in_project(root, **{**env, **extra}):
            r = pfp(*args)
        if code is not None:
            assert r.exit_code == code, (args, r.exit_code, r.stderr[-3000:], r.stdout[-2000:])
        assert not _leaks(r.stdout + r.stderr), (args, _leaks(r.stdout + r.stderr), r.stdout + r.stderr)
        outputs.append(r.stdout + r.stderr)
    assert "***@" in "".join(outputs)  # the tracking URI was shown, masked
    # a subprocess too: what reaches the real stderr (MLflow's and Ultralytics' own loggers, warnings)
    full_env = {**__import__("os").environ, **env, "PFP_HOME": str(root / ".pfp"), "PFP_DEBUG": "1"}
    for args in (["status", *c], ["rollback", "--to-version", "1", *c, "--json"]):
        p = subprocess.run([sys.executable, "-m", "pfp_mlops", *args], cwd=root, env=full_env, capture_output=True,
                           text=True, timeout=300)
        assert not _leaks(p.stdout + p.stderr), (args, p.stdout + p.stderr)
    assert (root / ".pfp" / "logs" / "pfp.log").stat().st_size > 0
    assert (root / ".pfp" / "alerts.jsonl").is_file()
    assert (root / "runs" / "training_info.json").is_file()
    assert list((root / "runs" / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B did run, with the key set
    assert _files_with_sentinels(root, server.root) == []
    # and through the MLflow API: params and tags of every run of this model's experiments
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(exps, max_results=5000):
        blob = json.dumps({"params": run.data.params, "tags": run.data.tags})
        assert not _leaks(blob), (run.info.run_id, _leaks(blob))
