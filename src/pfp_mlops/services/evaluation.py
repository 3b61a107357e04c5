"""The one evaluation protocol, applied to weights on disk or to registered versions, with its caches.

Cache rule: a result is reused only when its protocol fingerprint (protocol settings + split fingerprint + evaluator
+ library versions) equals the current one, never across fingerprints. Three places hold results:

* version tag `pfp.eval.<fingerprint>`: the EvalResult as JSON, plus `records`, the URI of the per-image records;
* artifact `eval/<weights sha256[:16]>/<fingerprint>.json` of the version's run: the per-image records
  (RECORDS_FORMAT below), so mAP50 can be recomputed and the bootstrap can pair champion and challenger on another
  machine; one folder per weights, so two versions registered from one training run keep their own records;
* `<PFP_HOME>/cache/eval/<fingerprint>/<weights sha256>.json`: the same file, content-addressed, because `register`
  evaluates weights before a version (and its tag) exists.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfp_mlops.domain.errors import InfraError, NotFoundError, PfpError
from pfp_mlops.domain.models import EvalResult, ModelVersionInfo, SplitManifest
from pfp_mlops.fsutil import atomic_write_json
from pfp_mlops.services.context import Context

if TYPE_CHECKING:
    from pfp_mlops.adapters.yolo import SplitEvaluation

EVAL_TAG_PREFIX = "pfp.eval."
RECORDS_DIR = "eval"
RECORDS_FORMAT = "pfp.eval-records/1"
_MEMO = "evaluations"  # ctx.extra key: evaluations done or loaded by this command


def protocol(ctx: Context, split: str = "test") -> dict[str, Any]:
    e = ctx.cfg.evaluation
    return {"imgsz": e.imgsz, "batch": e.batch, "conf": e.conf, "iou": e.iou, "split": split}


def fingerprint(ctx: Context, manifest: SplitManifest, split: str = "test") -> str:
    from pfp_mlops.adapters import yolo

    return yolo.protocol_fingerprint(protocol(ctx, split), manifest.fingerprint)


def evaluate_weights(ctx: Context, weights: Path, manifest: SplitManifest, split: str = "test") -> EvalResult:
    return evaluate_weights_detailed(ctx, weights, manifest, split).result


def evaluate_weights_detailed(ctx: Context, weights: Path, manifest: SplitManifest, split: str = "test", *,
                              label: str | None = None) -> SplitEvaluation:
    """Evaluate weights on a split (result + per-image records), reusing the local copy for the same bytes."""
    from pfp_mlops.adapters import yolo

    fp = fingerprint(ctx, manifest, split)
    local = ctx.home / "cache" / "eval" / fp / f"{file_sha256(weights)}.json"
    if local.is_file():
        cached = _load_records_file(local, fp)
        if cached is not None:
            return cached
    ctx.say(f"evaluating {label or weights} on the {split} split")
    e = ctx.cfg.evaluation
    ev = yolo.evaluate_detailed(
        weights, data_yaml=manifest.data_yaml, split=split, split_fingerprint=manifest.fingerprint,
        class_names=list(ctx.cfg.data.classes), imgsz=e.imgsz, batch=e.batch, conf=e.conf, iou=e.iou,
        device=ctx.settings.device, workdir=ctx.home / "eval",
    )
    if ev.result.protocol_fingerprint != fp:  # the adapter computes it from the same inputs: a bug if not
        raise PfpError(f"evaluation fingerprint {ev.result.protocol_fingerprint} != expected {fp}")
    atomic_write_json(local, records_payload(ev, weights_sha256=local.stem))
    return ev


def weights_for_version(ctx: Context, info: ModelVersionInfo) -> Path:
    """Download (once) the registered model's artifacts and return its weights file."""
    dst = ctx.home / "cache" / "models" / info.name / str(info.version)
    found = sorted(dst.glob("**/*.pt")) if dst.exists() else []
    if not found:
        ctx.registry.download(f"models:/{info.name}/{info.version}", dst)
        found = sorted(dst.glob("**/*.pt"))
    if not found:
        raise NotFoundError(f"{info.name} v{info.version}: no weights in its artifacts")
    return found[0]


def evaluate_version(ctx: Context, info: ModelVersionInfo, manifest: SplitManifest) -> EvalResult:
    """The summary only: the cached result of the version's tag when its fingerprint matches (no download), else
    `evaluate(...)`. For promote and the regression watch, which compare summaries."""
    fp = fingerprint(ctx, manifest)
    memo = ctx.extra.get(_MEMO, {}).get((info.name, info.version, fp))
    if memo is not None:
        return memo.result
    cached = _tag_result(info.tags.get(EVAL_TAG_PREFIX + fp), fp)
    if cached is not None:
        return cached
    return evaluate(ctx, info, manifest).result


def evaluate(ctx: Context, info: ModelVersionInfo, manifest: SplitManifest) -> SplitEvaluation:
    """The one evaluation entry point: result and per-image records of a registered version on the current TEST
    split, together (validate pairs the records in the bootstrap and reports the result).

    `info` is used as given (the caller read it in this command: no second read of the version). Reuses, in
    order: this command's earlier evaluation, the records the version's tag points to, the local copy for the
    version's weights; else evaluates. The records end up as artifact `eval/<fingerprint>.json` of the version's
    run and the tag points to them.
    """
    fp = fingerprint(ctx, manifest)
    memo: dict[tuple[str, int, str], SplitEvaluation] = ctx.extra.setdefault(_MEMO, {})
    key = (info.name, info.version, fp)
    if key in memo:
        return memo[key]
    tag = _tag_json(info.tags.get(EVAL_TAG_PREFIX + fp))
    ev = None
    if tag and tag.get("records"):
        ev = _download_records(ctx, tag["records"], fp)
    if ev is None:
        weights = weights_for_version(ctx, info)
        ev = evaluate_weights_detailed(ctx, weights, manifest, label=f"{info.name} v{info.version}")
        uri = None
        if info.run_id:
            sha = file_sha256(weights)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{fp}.json"
                path.write_text(json.dumps(records_payload(ev, weights_sha256=sha)), encoding="utf-8")
                # one folder per weights: two versions registered from one training run must not overwrite
                # each other's records (the champion would be paired with the challenger's own records)
                uri = ctx.registry.log_run_artifact(info.run_id, path, f"{RECORDS_DIR}/{sha[:16]}")
        ctx.registry.set_tags(info.name, info.version,
                              {EVAL_TAG_PREFIX + fp: json.dumps({**ev.result.to_dict(), "records": uri})})
    memo[key] = ev
    return ev


def evaluate_version_detailed(ctx: Context, info: ModelVersionInfo, manifest: SplitManifest) -> SplitEvaluation:
    """`evaluate` under its former name (kept for callers written before the one entry point)."""
    return evaluate(ctx, info, manifest)


def metric_tags(ev: EvalResult) -> dict[str, str]:
    tags = {f"metric.{k}": f"{getattr(ev, k):.6f}" for k in ("map50", "map50_95", "precision", "recall", "latency_ms")}
    tags["eval_fingerprint"] = ev.protocol_fingerprint
    return tags


# --- the records file -------------------------------------------------------------------------------------------


def records_payload(ev: SplitEvaluation, *, weights_sha256: str | None = None) -> dict[str, Any]:
    """The per-image records artifact: enough to recompute mAP50 and to pair two models image by image."""
    return {
        "format": RECORDS_FORMAT,
        "fingerprint": ev.result.protocol_fingerprint,
        "weights_sha256": weights_sha256,
        "result": ev.result.to_dict(),
        "images": list(ev.images),
        "records": ev.records.to_dict(),
    }


def parse_records_payload(data: dict[str, Any]) -> SplitEvaluation:
    """Inverse of `records_payload` (ValueError/KeyError/TypeError on a malformed file)."""
    from pfp_mlops.adapters.yolo import SplitEvaluation
    from pfp_mlops.domain.detection_metrics import PerImageRecords

    if data.get("format") != RECORDS_FORMAT:
        raise ValueError(f"unknown records format {data.get('format')!r}")
    records = PerImageRecords.from_dict(data["records"])
    images = [str(x) for x in data["images"]]
    if len(images) != records.n_images:
        raise ValueError("images and records disagree")
    return SplitEvaluation(result=result_from_dict(data["result"]), records=records, images=images)


def result_from_dict(d: dict[str, Any]) -> EvalResult:
    """EvalResult from its JSON form (to_dict writes NaN as null); unknown keys are ignored."""
    names = {f.name for f in fields(EvalResult)}
    kw = {k: v for k, v in d.items() if k in names}
    kw["per_class_ap50"] = {k: (math.nan if v is None else float(v)) for k, v in kw["per_class_ap50"].items()}
    for k in ("map50", "map50_95", "precision", "recall", "latency_ms"):
        kw[k] = math.nan if kw.get(k) is None else float(kw[k])
    return EvalResult(**kw)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tag_json(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None  # e.g. cut at the tag length limit: evaluate again
    return data if isinstance(data, dict) else None


def _tag_result(raw: str | None, fp: str) -> EvalResult | None:
    data = _tag_json(raw)
    if data is None:
        return None
    try:
        result = result_from_dict(data)
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    return result if result.protocol_fingerprint == fp else None


def _load_records_file(path: Path, fp: str) -> SplitEvaluation | None:
    try:
        ev = parse_records_payload(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return ev if ev.result.protocol_fingerprint == fp else None


def _download_records(ctx: Context, uri: str, fp: str) -> SplitEvaluation | None:
    """The records a tag points to; None when gone or not for this fingerprint (then the caller evaluates)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = ctx.registry.download(uri, Path(tmp))
        except (NotFoundError, InfraError):  # gone (or a local store error): evaluate again
            return None
        return _load_records_file(path, fp)
