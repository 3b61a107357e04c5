"""Shared fixtures: offline switches, an isolated working directory per test, and no leaked MLflow runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pfp_mlops.runtime_env import apply_offline_env

REPO = Path(__file__).resolve().parents[1]
# Variables from a developer's shell or .env that would point tests at real services.
_SCRUB = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
          "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PFP_CONFIG",
          "PFP_PROFILE", "PFP_MODEL_NAME", "PFP_DEVICE", "PFP_HOME", "PFP_ALERT_WEBHOOK_URL",
          "PFP_PRODUCTION_RUNTIME", "PFP_OPTUNA_STORAGE", "PFP_DEBUG", "PFP_LOG_FORMAT", "PFP_LOG_LEVEL",
          "PFP_SERVE_URL", "PFP_SERVE_TOKEN", "PFP_PREDICTION_LOG_DIR",
          "WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR", "WANDB_BASE_URL")


@pytest.fixture(scope="session", autouse=True)
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same switches the CLI uses (pfp_mlops.runtime_env), with one Ultralytics config dir for the session."""
    for key in _SCRUB:
        os.environ.pop(key, None)
    home = tmp_path_factory.mktemp("offline-home")
    apply_offline_env(home, override=True)
    return home


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder as the working directory, with its own PFP_HOME (embedded MLflow store)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PFP_HOME", str(tmp_path / ".pfp"))
    return tmp_path


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_run():
    """Like MLflow's own suite: a test must not leave an active run behind."""
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        run = mlflow.active_run()
        if run is not None:
            mlflow.end_run()
            pytest.fail(f"test leaked an active MLflow run {run.info.run_id}")
