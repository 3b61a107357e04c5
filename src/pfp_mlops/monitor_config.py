"""The `monitor:` section of the pipeline YAML (`pfp monitor`): where the prediction log and the delayed labels are,
how windows are cut, the drift thresholds and the pass / fail / inconclusive rule. Pure pydantic, no I/O."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str = "duration") -> float:
    """`90s`, `5m`, `1h`, `2d` → seconds (ValueError naming `what` otherwise)."""
    m = _DURATION.match(str(text))
    if not m or float(m[1]) <= 0:
        raise ValueError(f"{what} must be a positive duration like 30s, 5m, 1h, 1d (got {text!r})")
    return float(m[1]) * _UNIT_S[m[2]]


def parse_window(text: str) -> tuple[str, float]:
    """A window: `1h` (a duration: aligned time buckets) or `N` (every N logged predictions) → (kind, size)."""
    t = str(text).strip()
    if t.isdigit():
        if int(t) < 1:
            raise ValueError(f"window must be at least 1 prediction (got {text!r})")
        return "count", float(int(t))
    return "time", parse_duration(t, "window")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftConfig(_Strict):
    """Label-free signals: Jensen–Shannon divergence (base 2, in [0, 1]) of each histogram against the reference."""

    threshold: float = Field(default=0.1, gt=0, le=1)  # alert when a signal's divergence exceeds it
    thresholds: dict[str, float] = Field(default_factory=dict)  # per signal, e.g. {confidence: 0.05}
    min_samples: int = Field(default=20, ge=1)  # fewer observations in window or reference: no score


class MonitorConfig(_Strict):
    log_dir: str | None = None  # null: serve.prediction_log.dir when configured, else <PFP_HOME>/predictions
    # s3://bucket/prefix where `pfp serve` ships the log (serve.prediction_log.s3_uri): mirrored into
    # <PFP_HOME>/monitor/s3-mirror/ before each run and read from there (unless a log folder is given explicitly)
    log_s3_uri: str | None = None
    labels_dir: str | None = None  # `<sha256>.txt` YOLO label files; null: <log dir>/labels
    labels_csv: str | None = None  # request_id/image_index or sha256 → label_path; null: <labels dir>/labels.csv
    window: str = "1h"  # `1h` (aligned time buckets) or `N` (every N logged predictions)
    label_wait: str = "6h"  # a closed window waits this long for min_labelled labels before it is computed
    min_labelled: int = Field(default=30, ge=1)
    drop: float = Field(default=0.0, ge=0, le=1)  # fail when the ΔmAP50 interval's upper bound < -drop
    failure_limit: int = Field(default=2, ge=1)  # consecutive failed windows → rollback
    inconclusive_limit: int = Field(default=3, ge=1)  # consecutive inconclusive windows → alert
    bootstrap_resamples: int = Field(default=1000, ge=100)
    bootstrap_seed: int = 0
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    shadow_batch: int = Field(default=32, ge=1)
    experiment: str = "pfp-monitoring"
    decide: Literal["rollback", "alert"] = "rollback"  # `alert`: a failing verdict alerts but never rolls back
    drift: DriftConfig = DriftConfig()

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: object) -> str:
        text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # `window: 500` in YAML is an int
        if not isinstance(text, str):
            raise ValueError(f"window must be a duration like 1h or a number of predictions (got {v!r})")
        parse_window(text)
        return text

    @field_validator("label_wait")
    @classmethod
    def _wait(cls, v: str) -> str:
        if str(v).strip() not in ("0", "0s"):
            parse_duration(v, "label_wait")
        return v

    def label_wait_s(self) -> float:
        return 0.0 if str(self.label_wait).strip() in ("0", "0s") else parse_duration(self.label_wait)
