"""Typed results that services return and the CLI renders (rich table or --json)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
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
    """The current split: counts, the files `pfp split` wrote, the fingerprint, and (read back) every item.

    `items` maps each image path (relative to the data folder) to `[content hash, split]`; it is what the leakage
    check compares and is left out of `to_dict()` (100,000 items do not belong in `--json`), as it is of equality.
    """

    fingerprint: str
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]  # split -> class name -> boxes
    data_yaml: str
    list_files: dict[str, str]
    seed: int
    n_duplicates_grouped: int = 0
    moved: int | None = None  # items whose split differs from the previous manifest (None: no previous)
    data_root: str | None = None
    # where the data came from, when `pfp ingest` brought it in: format, root, counts, dataset_digest, report_digest
    source: dict[str, Any] | None = None
    items: Mapping[str, Sequence[str]] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _clean({f.name: getattr(self, f.name) for f in fields(self) if f.name != "items"})

    def list_file(self, split: str) -> Path:
        """The image list of one split (`dataset/<split>.txt`)."""
        return Path(self.list_files[split])

    @classmethod
    def from_dict(cls, data: Any) -> SplitManifest:
        """Parse `split_manifest.json`; ValueError naming the first missing or malformed field."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key, kind in (("fingerprint", str), ("counts", dict), ("data_yaml", str), ("list_files", dict)):
            if not isinstance(data.get(key), kind):
                raise ValueError(f"{key!r} missing or not a {kind.__name__}")
        missing = [s for s in SPLITS if s not in data["list_files"]]
        if missing:
            raise ValueError(f"'list_files' has no {missing[0]!r} entry")
        items = data.get("items")
        items = {} if items is None else items
        if not isinstance(items, dict):
            raise ValueError("'items' is not an object")
        return cls(
            fingerprint=data["fingerprint"], counts={str(k): int(v) for k, v in data["counts"].items()},
            class_counts=data.get("class_counts") or {}, data_yaml=data["data_yaml"],
            list_files={str(k): str(v) for k, v in data["list_files"].items()}, seed=int(data.get("seed", 0)),
            n_duplicates_grouped=int(data.get("n_duplicates_grouped", 0)), moved=data.get("moved"),
            data_root=data.get("data_root"), source=data.get("source"), items=items,
        )


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
    ledger_run_id: str | None = None


@dataclass(frozen=True)
class PromoteResult(Result):
    name: str
    version: int
    decision: Decision
    alias: str
    ledger_run_id: str | None = None  # the lifecycle entry of this action (services.lifecycle.annotate adds to it)


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
    ledger_run_id: str | None = None


@dataclass(frozen=True)
class RollbackResult(Result):
    name: str
    from_version: int | None
    to_version: int
    dry_run: bool
    reasons: list[str]
    alert: dict[str, Any] = field(default_factory=dict)
    ledger_run_id: str | None = None


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
    ledger_run_id: str | None = None  # rolled back: the rollback's entry (it moved production); else the watch's
