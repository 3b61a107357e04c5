"""COCO's own evaluation (faster-coco-eval, else pycocotools) at IoU 0.5: the independent reference that the
evaluator's numbers are checked against (tests/unit/test_detection_metrics.py, the integration scenarios)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest


def coco_eval_at_50(images: Sequence[tuple[Any, Any, Any, Any, Any]], n_classes: int, *,
                    max_dets: int = 100) -> Any:
    """Run COCOeval (bbox, IoU 0.5 only, up to `max_dets` detections per image) on per-image
    (pred_boxes_xyxy, pred_classes, pred_confs, gt_boxes_xyxy, gt_classes); return it accumulated and summarised:
    `stats[0]` is AP50 (area all), `eval["precision"][0, :, :, 0, -1]` the [101 recall points, K classes] table."""
    try:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    except ImportError:  # pragma: no cover - fallback
        COCO = pytest.importorskip("pycocotools.coco").COCO  # noqa: N806
        COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval  # noqa: N806

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    gt: dict[str, list] = {"images": [{"id": i, "width": 640, "height": 640} for i in range(len(images))],
                           "categories": [{"id": c, "name": str(c)} for c in range(n_classes)], "annotations": []}
    dets = []
    for i, (pb, pc, cf, gb, gc) in enumerate(images):
        for b, c in zip(gb, gc, strict=True):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                      "bbox": xywh(b), "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0})
        dets += [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
                 for b, c, s in zip(pb, pc, cf, strict=True)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
