"""Settings from the environment and `.env`, the YAML config, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pfp_mlops.domain.errors import ConfigError
from pfp_mlops.settings import PipelineConfig, Settings, load_config, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_embedded_defaults_use_sqlite_under_home(tmp_path):
    """With no tracking URI, MLflow is a SQLite file and a local artifact folder under PFP_HOME."""
    s = Settings(_env_file=None, PFP_HOME=str(tmp_path / "h"))
    assert s.tracking_uri() == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert s.artifact_root() == (tmp_path / "h" / "artifacts").as_uri()
    assert s.is_embedded()


def test_configured_server_is_used(monkeypatch):
    """MLFLOW_TRACKING_URI from the environment wins; artifacts are the server's business."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = load_settings()
    assert s.tracking_uri() == "http://127.0.0.1:5000" and s.artifact_root() is None


def test_configured_sqlite_store_keeps_artifacts_beside_the_database(monkeypatch, tmp_path):
    """A configured SQLite URI gets an artifact folder next to its database, not ./mlruns in the current folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'm.db'}")
    assert load_settings().artifact_root() == (tmp_path / "store" / "artifacts").as_uri()


def test_dotenv_is_read(tmp_path, monkeypatch):
    """Values in `.env` are read when the environment does not set them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PFP_MODEL_NAME=from-dotenv\nPFP_DEVICE=0,1\nPOSTGRES_USER=ignored\n")
    s = load_settings()
    assert s.model_name == "from-dotenv" and s.device == "0,1"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("PFP_DEVICE", "gpu-please", "PFP_DEVICE"),
        ("MLFLOW_TRACKING_URI", "ftp://nowhere", "MLFLOW_TRACKING_URI"),
        ("PFP_LOG_FORMAT", "xml", "PFP_LOG_FORMAT"),
        ("PFP_MODEL_NAME", "bad name!", "PFP_MODEL_NAME"),
        ("PFP_ALERT_WEBHOOK_URL", "not a url", "PFP_ALERT_WEBHOOK_URL"),
        ("MLFLOW_S3_ENDPOINT_URL", "minio:9000", "MLFLOW_S3_ENDPOINT_URL"),
    ],
)
def test_bad_env_values_name_the_variable(monkeypatch, var, value, needle):
    """A bad value fails at start with the variable's name."""
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert needle in e.value.message


def test_secret_is_not_echoed_in_errors(monkeypatch):
    """Secrets are SecretStr: never shown in repr or errors."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret-123")
    s = load_settings()
    assert "sentinel-secret-123" not in repr(s)
    assert s.secret_values() == ["sentinel-secret-123"]


def test_default_yaml_equals_built_in_defaults():
    """configs/default.yaml states exactly the built-in defaults (no drift between docs and code)."""
    assert load_config(REPO / "configs" / "default.yaml") == PipelineConfig()


def test_demo_profile_is_small_and_valid():
    """The demo profile loads and is faster than the default."""
    demo = load_config(REPO / "configs" / "demo.yaml")
    assert demo.train.imgsz < PipelineConfig().train.imgsz and demo.train.epochs < PipelineConfig().train.epochs


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("train: [unclosed", "cfg.yaml:"),
        ("train:\n  epochz: 3\n", "train.epochz: unknown key"),
        ("train:\n  epochs: many\n", "train.epochs"),
        ("split:\n  ratios: {train: 0.9, valid: 0.2, test: 0.1}\n", "sum to 1"),
        ("- a list\n", "mapping"),
        ("gates:\n  validate:\n    mode: sideways\n", "gates.validate.mode"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, content, needle):
    """Malformed YAML, unknown keys and wrong types fail with the file and key named."""
    p = tmp_path / "cfg.yaml"
    p.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert needle in e.value.message


def test_yaml_override_round_trip(tmp_path):
    """A partial YAML overrides only what it names."""
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump({"train": {"epochs": 3}}))
    cfg = load_config(p)
    assert cfg.train.epochs == 3 and cfg.train.imgsz == PipelineConfig().train.imgsz
