"""Helpers shared by the integration tests: write configs, call the CLI in-process, read the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from pfp_mlops.cli.app import app

TINY = {
    "demo": {"n_images": 100, "imgsz": 96, "seed": 0},
    "train": {"epochs": 20, "imgsz": 96, "batch": 4, "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 96, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}


def write_config(path: Path, base: dict[str, Any] | None = None, **overrides: Any) -> Path:
    cfg = json.loads(json.dumps(base or TINY))
    for dotted, value in overrides.items():
        node = cfg
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def pfp(*args: str) -> Any:
    """Run `pfp ARGS` in-process through the public Typer app; returns the click Result."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def pfp_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = pfp(*args, "--json")
    return r.exit_code, json.loads(r.stdout)


def client():
    import os

    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(os.environ['PFP_HOME']).resolve() / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
