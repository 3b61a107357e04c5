"""Labelled performance of one window, and the previous production shadow-scored on the same images.

The serving version is scored on what it answered (the logged boxes); the previous production predicts the stored
request images offline through its pyfunc with its own serving settings (never in the request path). Both are scored
by `domain.detection_metrics.score_images` (the evaluator `validate` uses) on the same labelled images, and ΔmAP50 =
serving − previous gets its interval from the same paired bootstrap `validate` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfp_mlops.domain.prediction_log import Box, LoggedPrediction


@dataclass
class Performance:
    n_labelled: int
    n_scored: int
    images_missing: int
    map50: float | None = None
    map50_95: float | None = None
    previous_version: int | None = None
    previous_map50: float | None = None
    previous_map50_95: float | None = None
    delta_map50: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    bootstrap: dict[str, Any] | None = None
    unknown_class_boxes: int = 0

    def metrics(self) -> dict[str, float]:
        keys = ("map50", "map50_95", "previous_map50", "previous_map50_95", "delta_map50", "delta_ci_low",
                "delta_ci_high")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {**out, "n_labelled": float(self.n_labelled), "n_scored": float(self.n_scored)}


def _gt(rows: list[tuple[int, float, float, float, float]], w: int, h: int) -> tuple[Any, Any]:
    import numpy as np

    if not rows:
        return np.zeros((0, 4)), np.zeros(0, dtype="int64")
    a = np.asarray(rows, dtype=np.float64)
    cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1), a[:, 0].astype("int64")


def _dets(boxes: tuple[Box, ...], n_classes: int) -> tuple[Any, Any, Any, int]:
    import numpy as np

    kept = [b for b in boxes if 0 <= b.class_id < n_classes]
    xyxy = np.asarray([[b.x1, b.y1, b.x2, b.y2] for b in kept], dtype=np.float64).reshape(-1, 4)
    return (xyxy, np.asarray([b.class_id for b in kept], dtype="int64"),
            np.asarray([b.confidence for b in kept], dtype=np.float64), len(boxes) - len(kept))


def score_window(preds: list[LoggedPrediction], labels: dict[str, list[tuple[int, float, float, float, float]]], *,
                 n_classes: int, log_dir: Path, previous_version: int | None, previous_predictor: Any,
                 min_labelled: int, resamples: int, seed: int, confidence: float, shadow_batch: int,
                 stored_image: Any) -> Performance:
    """Score the labelled predictions of a window (and the previous version on them when it is known)."""
    from pfp_mlops.domain.detection_metrics import ImageDetections, paired_bootstrap, score_images

    labelled = [p for p in preds if p.image_sha256 in labels]
    perf = Performance(n_labelled=len(labelled), n_scored=0, images_missing=0, previous_version=previous_version)
    if len(labelled) < min_labelled:
        return perf
    shadow: dict[str, tuple[Box, ...]] = {}
    if previous_version is not None:
        paths: dict[str, Path] = {}
        for p in labelled:
            if p.image_sha256 not in paths:
                found = stored_image(log_dir, p.image_sha256)
                if found is not None:
                    paths[p.image_sha256] = found
        perf.images_missing = len({p.image_sha256 for p in labelled} - set(paths))
        shas = list(paths)
        out = previous_predictor(previous_version).predict([paths[s] for s in shas], batch=shadow_batch)
        shadow = {s: boxes for s, (_, _, boxes) in zip(shas, out, strict=True)}
        labelled = [p for p in labelled if p.image_sha256 in shadow]
    perf.n_scored = len(labelled)
    if perf.n_scored < min_labelled:
        return perf
    cur, prev = [], []
    for p in labelled:
        gt_boxes, gt_cls = _gt(labels[p.image_sha256], p.width, p.height)
        xyxy, cls, conf, dropped = _dets(p.boxes, n_classes)
        perf.unknown_class_boxes += dropped
        cur.append(ImageDetections(xyxy, cls, conf, gt_boxes, gt_cls))
        if previous_version is not None:
            xyxy, cls, conf, _ = _dets(shadow[p.image_sha256], n_classes)
            prev.append(ImageDetections(xyxy, cls, conf, gt_boxes, gt_cls))
    s_cur = score_images(cur, n_classes)
    perf.map50, perf.map50_95 = s_cur.map50, s_cur.map50_95
    if previous_version is None:
        return perf
    s_prev = score_images(prev, n_classes)
    perf.previous_map50, perf.previous_map50_95 = s_prev.map50, s_prev.map50_95
    boot = paired_bootstrap(s_prev.records, s_cur.records, n_resamples=resamples, seed=seed, confidence=confidence)
    perf.delta_map50, perf.delta_ci_low, perf.delta_ci_high = boot.point_delta, boot.ci_low, boot.ci_high
    perf.bootstrap = boot.to_dict()
    return perf
