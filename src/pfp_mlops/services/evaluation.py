"""The one evaluation protocol, applied to weights on disk or to registered versions (with a result cache).

A cached result is stored on the version as tag `pfp.eval.<protocol fingerprint>` and reused only when the
fingerprint (protocol settings + split fingerprint + library versions) is identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import NotFoundError
from pfp_mlops.domain.models import EvalResult, ModelVersionInfo
from pfp_mlops.services.context import Context

EVAL_TAG_PREFIX = "pfp.eval."


def protocol(ctx: Context, split: str = "test") -> dict[str, Any]:
    e = ctx.cfg.evaluation
    return {"imgsz": e.imgsz, "batch": e.batch, "conf": e.conf, "iou": e.iou, "split": split}


def evaluate_weights(ctx: Context, weights: Path, manifest: dict[str, Any], split: str = "test") -> EvalResult:
    from pfp_mlops.adapters import yolo

    e = ctx.cfg.evaluation
    return yolo.evaluate(
        weights, data_yaml=manifest["data_yaml"], split=split, split_fingerprint=manifest["fingerprint"],
        class_names=list(ctx.cfg.data.classes), imgsz=e.imgsz, batch=e.batch, conf=e.conf, iou=e.iou,
        device=ctx.settings.device, workdir=ctx.home / "eval",
    )


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


def evaluate_version(ctx: Context, info: ModelVersionInfo, manifest: dict[str, Any]) -> EvalResult:
    """Evaluate a registered version on the current TEST split, reusing a cached result with the same fingerprint."""
    from pfp_mlops.adapters import yolo

    fp = yolo.protocol_fingerprint(protocol(ctx), manifest["fingerprint"])
    cached = info.tags.get(EVAL_TAG_PREFIX + fp)
    if cached:
        try:
            return EvalResult(**json.loads(cached))
        except (TypeError, json.JSONDecodeError):
            pass
    ctx.say(f"evaluating {info.name} v{info.version} on the test split")
    result = evaluate_weights(ctx, weights_for_version(ctx, info), manifest)
    ctx.registry.set_tags(info.name, info.version, {EVAL_TAG_PREFIX + fp: json.dumps(result.to_dict())})
    return result


def metric_tags(ev: EvalResult) -> dict[str, str]:
    tags = {f"metric.{k}": f"{getattr(ev, k):.6f}" for k in ("map50", "map50_95", "precision", "recall", "latency_ms")}
    tags["eval_fingerprint"] = ev.protocol_fingerprint
    return tags
