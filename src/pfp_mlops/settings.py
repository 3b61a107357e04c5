"""Settings: the environment and `.env` (pydantic-settings), plus the YAML pipeline config in `configs/`.

Precedence: command-line options > environment > `.env` > YAML profile > built-in defaults.
Nothing here is built at import time: the CLI builds one `Settings` and one `PipelineConfig` per command and
passes them down; tests construct them explicitly (`Settings(_env_file=None)`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pfp_mlops.domain.errors import ConfigError
from pfp_mlops.serving.config import ServeConfig
from pfp_mlops.settings_parallel import ParallelConfig
from pfp_mlops.tracker_config import Tracker, WandbConfig, check_trackers

_DEVICE_RE = re.compile(r"^(cpu|auto|mps|\d+(,\d+)*)$")


def _env(name: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """Everything that differs between a laptop, CI and production: read from the environment and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_tracking_uri: str | None = _env("MLFLOW_TRACKING_URI")
    mlflow_tracking_username: str | None = _env("MLFLOW_TRACKING_USERNAME")
    mlflow_tracking_password: SecretStr | None = _env("MLFLOW_TRACKING_PASSWORD")
    mlflow_s3_endpoint_url: str | None = _env("MLFLOW_S3_ENDPOINT_URL")
    aws_access_key_id: str | None = _env("AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = _env("AWS_SECRET_ACCESS_KEY")

    model_name: str = Field(default="pfp-detector", validation_alias=AliasChoices("PFP_MODEL_NAME"))
    config: Path | None = _env("PFP_CONFIG")
    profile: str = Field(default="default", validation_alias=AliasChoices("PFP_PROFILE"))
    device: str = Field(default="cpu", validation_alias=AliasChoices("PFP_DEVICE"))
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=AliasChoices("PFP_LOG_FORMAT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=AliasChoices("PFP_LOG_LEVEL")
    )
    alert_webhook_url: str | None = _env("PFP_ALERT_WEBHOOK_URL")
    production_runtime: str | None = _env("PFP_PRODUCTION_RUNTIME")
    optuna_storage: str | None = _env("PFP_OPTUNA_STORAGE")
    # `pfp train --worker` (issue 16): this worker's name in the study (default: host + Job/array index or pid)
    worker_id: str | None = _env("PFP_WORKER_ID")
    home: Path = Field(default=Path(".pfp"), validation_alias=AliasChoices("PFP_HOME"))
    debug: bool = Field(default=False, validation_alias=AliasChoices("PFP_DEBUG"))
    # pfp serve: the server promote/validate/rollback confirm, the token of its /admin/reload, the prediction log
    serve_url: str | None = _env("PFP_SERVE_URL")
    serve_token: SecretStr | None = _env("PFP_SERVE_TOKEN")
    prediction_log_dir: Path | None = _env("PFP_PREDICTION_LOG_DIR")
    # Weights & Biases (train.trackers: [mlflow, wandb], issue 18): the W&B SDK reads these variables itself; they
    # are here so that the key is a secret to scrub and the rest is passed down explicitly (checked when used)
    wandb_api_key: SecretStr | None = _env("WANDB_API_KEY")
    wandb_project: str | None = _env("WANDB_PROJECT")
    wandb_entity: str | None = _env("WANDB_ENTITY")
    wandb_mode: str | None = _env("WANDB_MODE")
    wandb_dir: Path | None = _env("WANDB_DIR")

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not re.match(r"^(https?|sqlite|postgresql(\+\w+)?|mysql(\+\w+)?|file|databricks)://", v) and not (
            v.startswith("/")
        ):
            raise ValueError(f"unsupported tracking URI {v!r} (expected http(s)://, sqlite://, postgresql://, file://)")
        return v

    @field_validator("mlflow_s3_endpoint_url", "alert_webhook_url", "serve_url")
    @classmethod
    def _check_http_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        v = v.strip().lower().replace(" ", "")
        if not _DEVICE_RE.match(v):
            raise ValueError(f"invalid device {v!r} (expected cpu, auto, mps, a CUDA index like 0, or a list like 0,1)")
        return v

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$", v):
            raise ValueError(f"invalid model name {v!r} (letters, digits, '.', '_', '-')")
        return v

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _normalise_case(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) and v.lower() in ("text", "json") else (
            v.upper() if isinstance(v, str) else v
        )

    # --- derived paths (embedded defaults) ---
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def tracking_uri(self) -> str:
        """The MLflow URI: the configured one, else a SQLite store under PFP_HOME (embedded default)."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.resolved_home() / 'mlflow.db'}"

    def artifact_root(self) -> str | None:
        """Where new experiments keep artifacts: a local folder for the embedded store, the server's choice otherwise.

        A configured `sqlite:///…/x.db` gets `…/artifacts` beside the database: MLflow's own default, `./mlruns`
        relative to whatever the working directory happens to be, scatters a store's artifacts across folders.
        """
        uri = self.mlflow_tracking_uri
        if uri and uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
            return (Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent / "artifacts").as_uri()
        if uri:
            return None
        return (self.resolved_home() / "artifacts").as_uri()

    def is_embedded(self) -> bool:
        return not self.mlflow_tracking_uri

    def secret_values(self) -> list[str]:
        """Secret strings that must never be printed, logged or stored."""
        out = []
        for s in (self.aws_secret_access_key, self.mlflow_tracking_password, self.serve_token, self.wandb_api_key):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        return out


_ENV_NAMES = {
    name: (f.validation_alias.choices[0] if isinstance(f.validation_alias, AliasChoices) else name)
    for name, f in Settings.model_fields.items()
}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once per command; a bad value fails with the variable's name (ConfigError)."""
    try:
        s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else "?"
        var = _ENV_NAMES.get(loc, loc)
        value = os.environ.get(var)
        msg = err["msg"].removeprefix("Value error, ")
        shown = f" (got {value!r})" if value is not None and var not in _SECRET_VARS else ""
        raise ConfigError(f"{var}: {msg}{shown}") from None
    return s


_SECRET_VARS = {"AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "PFP_SERVE_TOKEN", "WANDB_API_KEY"}


# ---------------------------------------------------------------------------------------------------------------
# YAML pipeline config
# ---------------------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Strict):
    data_dir: Path = Path("data")
    dataset_dir: Path = Path("dataset")
    runs_dir: Path = Path("runs")


def read_classes_file(path: Path) -> list[str]:
    """The class list of a `classes.yaml` (`names:` as a list or {index: name}); ConfigError naming the file."""
    from pfp_mlops.domain.classes import normalise_names

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the class list ({type(e).__name__})") from None
    if not isinstance(raw, dict) or raw.get("names") is None:
        raise ConfigError(f"{path}: expected a mapping with `names:` (the class list)")
    try:
        return normalise_names(raw["names"], nc=raw.get("nc"), where=f"{path}: names")
    except ValueError as e:
        raise ConfigError(str(e)) from None


class DataConfig(_Strict):
    csv: str = "dataset_info.csv"
    classes: list[str] = Field(default_factory=lambda: ["rock", "paper", "scissors"], min_length=1)
    # `pfp ingest` writes the dataset's class list to `<data_dir>/classes.yaml`; pointing this at it makes that
    # file the class list (relative to the working directory, like paths.*). Stating `classes` as well is allowed
    # only when both agree. A file not written yet leaves `classes` as configured (`pfp split` then refuses).
    classes_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _classes_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("classes_file"):
            return data
        path = Path(data["classes_file"])
        if not path.is_file():
            return data
        names = read_classes_file(path)
        if data.get("classes") is not None and list(data["classes"]) != names:
            raise ValueError(f"data.classes {list(data['classes'])} differ from {path}: {names}")
        return {**data, "classes": names}


class DemoConfig(_Strict):
    n_images: int = Field(default=300, ge=8, le=100_000)
    imgsz: int = Field(default=160, ge=32, le=2048)
    seed: int = 0
    max_objects: int = Field(default=3, ge=1, le=20)


class SplitRatios(_Strict):
    train: float = Field(default=0.7, gt=0, lt=1)
    valid: float = Field(default=0.15, gt=0, lt=1)
    test: float = Field(default=0.15, gt=0, lt=1)


class SplitConfig(_Strict):
    seed: int = 42
    ratios: SplitRatios = SplitRatios()
    allow_missing_classes: bool = False
    # `pfp ingest --keep-source-splits`: keep the split the source export assigned (CSV column `source_split`)
    # instead of the hash policy; items without one fall back to the hash policy
    use_source_split: bool = False

    @field_validator("ratios")
    @classmethod
    def _sum_to_one(cls, v: SplitRatios) -> SplitRatios:
        total = v.train + v.valid + v.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1 (got {total:g})")
        return v


class SearchParam(_Strict):
    """One dimension of the search space: an Ultralytics train argument (lr0, mosaic, …), `batch` or `imgsz`."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs `low` and `high`")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("`log` and `step` cannot be combined")
        return self


def _p(type_: str, low: float | None = None, high: float | None = None, *, log: bool = False,
       choices: list[Any] | None = None) -> SearchParam:
    return SearchParam(type=type_, low=low, high=high, log=log, choices=choices)  # type: ignore[arg-type]


# The built-in search space (configs/default.yaml states the same). Ultralytics' own defaults lie inside every range.
DEFAULT_SPACE: dict[str, SearchParam] = {
    "optimizer": _p("categorical", choices=["SGD", "AdamW"]),
    "lr0": _p("float", 1e-4, 1e-1, log=True),
    "lrf": _p("float", 0.01, 0.5, log=True),
    "momentum": _p("float", 0.6, 0.98),
    "weight_decay": _p("float", 1e-5, 1e-2, log=True),
    "warmup_epochs": _p("float", 0.0, 5.0),
    "hsv_h": _p("float", 0.0, 0.1),
    "hsv_s": _p("float", 0.0, 0.9),
    "hsv_v": _p("float", 0.0, 0.9),
    "degrees": _p("float", 0.0, 30.0),
    "translate": _p("float", 0.0, 0.5),
    "scale": _p("float", 0.0, 0.9),
    "fliplr": _p("float", 0.0, 1.0),
    "mosaic": _p("float", 0.0, 1.0),
    "mixup": _p("float", 0.0, 0.5),
    "batch": _p("categorical", choices=[8, 16, 32]),
    "imgsz": _p("categorical", choices=[256, 320, 384]),
}


class SearchConfig(_Strict):
    """The Optuna study of `pfp train`. Trial 0 of a study is the baseline (train.hyperparameters as configured);
    later trials sample `space`. n_trials counts every finished trial of the study, across runs and processes."""

    n_trials: int = Field(default=20, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    trial_epochs: int | None = Field(default=None, ge=1)  # epochs per trial; null = train.epochs
    sampler_seed: int = 0
    pruner: Literal["none", "median", "hyperband", "threshold"] = "median"
    pruner_warmup_epochs: int = Field(default=3, ge=0)
    pruner_startup_trials: int = Field(default=2, ge=0)  # completed trials before any pruning
    pruner_threshold: float = Field(default=0.05, ge=0, le=1)  # `threshold`: prune when valid mAP50 is below
    study_name: str | None = None
    retrain_best: bool = False
    parallel: ParallelConfig = ParallelConfig()  # several processes on one study (issue 16)
    space: dict[str, SearchParam] = Field(default_factory=lambda: dict(DEFAULT_SPACE))

    @field_validator("study_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$", v):
            raise ValueError(f"invalid study name {v!r} (letters, digits, '.', '_', '-')")
        return v


class TrainConfig(_Strict):
    model: str = "yolov8n.yaml"
    epochs: int = Field(default=60, ge=1)
    imgsz: int = Field(default=320, ge=32, le=4096)
    batch: int = Field(default=16, ge=1)
    workers: int = Field(default=0, ge=0)
    seed: int = 0
    patience: int = Field(default=100, ge=0)
    amp: bool = True  # used on GPU only
    plots: bool = True  # loss/mAP curves, PR curve, confusion matrix (PNG) of every completed trial
    hyperparameters: dict[str, float | int | bool | str] = Field(default_factory=dict)
    search: SearchConfig = SearchConfig()
    # Where the study is tracked: MLflow always, Weights & Biases as well with [mlflow, wandb] (issue 18)
    trackers: list[Tracker] = Field(default_factory=lambda: ["mlflow"], min_length=1)
    wandb: WandbConfig = WandbConfig()

    @field_validator("trackers")
    @classmethod
    def _trackers(cls, v: list[str]) -> list[str]:
        return check_trackers(v)

    @field_validator("model")
    @classmethod
    def _model_yaml(cls, v: str) -> str:
        if not v.endswith((".yaml", ".yml", ".pt")):
            raise ValueError(f"model must be a model YAML such as yolov8n.yaml or a local .pt file (got {v!r})")
        return v


class EvaluationConfig(_Strict):
    imgsz: int = Field(default=320, ge=32, le=4096)
    batch: int = Field(default=16, ge=1)
    conf: float = Field(default=0.001, ge=0, le=1)
    iou: float = Field(default=0.6, gt=0, le=1)


class RegisterGate(_Strict):
    min_map50: float = Field(default=0.5, ge=0, le=1)


class PromoteGate(_Strict):
    min_map50: float = Field(default=0.5, ge=0, le=1)
    min_recall: float = Field(default=0.0, ge=0, le=1)
    min_class_ap50: float = Field(default=0.0, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0)


class ValidateGate(_Strict):
    metric: Literal["map50", "map50_95"] = "map50"
    mode: Literal["relative", "absolute"] = "relative"
    min_improvement: float = Field(default=0.01, ge=0)
    max_class_drop: float | None = Field(default=None, ge=0, le=1)
    # guarded (default): the point rule AND an interval above 0; point: the point rule alone; bootstrap: the interval
    # against the bar (domain/promotion_rule.py)
    decision: Literal["guarded", "point", "bootstrap"] = "guarded"
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0
    # `validate --against previous`: how much worse (absolute, gate metric) production may be than the previous
    # production before it is rolled back; `--tolerance` overrides it for one call
    regression_tolerance: float = Field(default=0.0, ge=0, le=1)


class GatesConfig(_Strict):
    register_: RegisterGate = Field(default=RegisterGate(), alias="register")
    promote: PromoteGate = PromoteGate()
    validate_: ValidateGate = Field(default=ValidateGate(), alias="validate")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RegistryConfig(_Strict):
    staging_alias: str = "staging"
    production_alias: str = "production"
    lifecycle_experiment: str = "pfp-lifecycle"
    training_experiment: str = "pfp-training"


class PipelineSettings(_Strict):
    budget_s: float = Field(default=7200, gt=0)


class PipelineConfig(_Strict):
    """The YAML pipeline config (`configs/<profile>.yaml`); unknown keys are errors."""

    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    demo: DemoConfig = DemoConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gates: GatesConfig = GatesConfig()
    registry: RegistryConfig = RegistryConfig()
    pipeline: PipelineSettings = PipelineSettings()
    serve: ServeConfig = ServeConfig()

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain data, used for step fingerprints."""
        return getattr(self, name).model_dump(mode="json", by_alias=True)


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def resolve_config_path(explicit: Path | None, profile: str) -> Path | None:
    """`--config`/PFP_CONFIG wins; else `configs/<profile>.yaml` in the working directory; else the packaged copy."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    if not re.match(r"^[A-Za-z0-9_\-]+$", profile):
        raise ConfigError(f"PFP_PROFILE: invalid profile name {profile!r}")
    for candidate in (Path("configs") / f"{profile}.yaml", PACKAGED_CONFIGS / f"{profile}.yaml"):
        if candidate.is_file():
            return candidate
    if profile == "default":
        return None
    raise ConfigError(f"unknown profile {profile!r}: no configs/{profile}.yaml")


def load_config(path: Path | None) -> PipelineConfig:
    """Parse and validate a YAML config; errors name the file and the key."""
    if path is None:
        return PipelineConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e.__class__.__name__})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p).rstrip("_") for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{path}: {key}: {msg}") from None


def load_pipeline_config(
    settings: Settings, *, config: Path | None = None, profile: str | None = None
) -> PipelineConfig:
    return load_config(resolve_config_path(config or settings.config, profile or settings.profile))
