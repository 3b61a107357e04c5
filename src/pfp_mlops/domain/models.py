"""Typed results that services return and the CLI renders (rich table or --json)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SPLITS = ("train", "valid", "test")
STAGES = ("candidate", "staging", "production", "archived", "rejected", "rolled_back")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Result:
    """Mixin: every result can be rendered as JSON."""

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class SplitManifest(Result):
    fingerprint: str
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]  # split -> class name -> boxes
    data_yaml: str
    list_files: dict[str, str]
    seed: int
    n_duplicates_grouped: int = 0
    moved: int | None = None  # items whose split differs from the previous manifest (None: no previous)
    # where the data came from, when `pfp ingest` brought it in: format, root, counts, dataset_digest, report_digest
    source: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvalResult(Result):
    """One model evaluated on one split under one protocol."""

    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class_ap50: dict[str, float]
    latency_ms: float
    n_images: int
    split: str
    split_fingerprint: str
    protocol_fingerprint: str

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True)
class Decision(Result):
    """A gate's answer with the reasons a human reads."""

    gate: str
    passed: bool
    reasons: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None  # promote / reject / inconclusive (validate)


@dataclass(frozen=True)
class TrainResult(Result):
    run_id: str
    weights: str
    training_info: str
    valid_metrics: dict[str, float]
    params: dict[str, Any]
    split_fingerprint: str
    epochs: int
    duration_s: float
    study: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelVersionInfo(Result):
    name: str
    version: int
    stage: str | None
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    source: str | None = None

    def metric(self, key: str) -> float | None:
        raw = self.tags.get(f"metric.{key}")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None


@dataclass(frozen=True)
class RegisterResult(Result):
    name: str
    version: int
    decision: Decision
    evaluation: EvalResult
    model_uri: str


@dataclass(frozen=True)
class PromoteResult(Result):
    name: str
    version: int
    decision: Decision
    alias: str


@dataclass(frozen=True)
class ValidateResult(Result):
    name: str
    challenger: int | None
    champion: int | None
    decision: Decision
    action: str  # promoted / rejected / nothing / rolled_back / inconclusive
    challenger_eval: EvalResult | None = None
    champion_eval: EvalResult | None = None
    production: int | None = None


@dataclass(frozen=True)
class RollbackResult(Result):
    name: str
    from_version: int | None
    to_version: int
    dry_run: bool
    reasons: list[str]
    alert: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutcome(Result):
    step: str
    status: str  # ok / skipped / failed / gate
    duration_s: float
    summary: str
    exit_code: int = 0


@dataclass(frozen=True)
class PipelineResult(Result):
    steps: list[StepOutcome]
    exit_code: int
    duration_s: float


@dataclass(frozen=True)
class RegressionResult(Result):
    """`pfp validate --against previous`: production against the previous production on current data."""

    name: str
    production: int | None
    previous: int | None
    decision: Decision
    action: str  # kept / rolled_back / nothing
    production_eval: EvalResult | None = None
    previous_eval: EvalResult | None = None
    rollback: RollbackResult | None = None
