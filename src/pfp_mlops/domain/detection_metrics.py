"""Pure-numpy detection metrics: per-image records, AP50/mAP50 and a paired bootstrap.

Why this module exists: the promotion gate compares a challenger detector with the
current champion on the *same* test images.  A single mAP50 difference says nothing
about how much of it is noise, so we keep per-image evaluation records (which
prediction was a true positive at IoU 0.5, how many ground-truth boxes per class)
and resample images with a paired bootstrap to get a confidence interval on the
mAP50 delta.

Conventions (chosen to reproduce Ultralytics' validator numbers):

* Matching (:func:`match_image`) is the greedy one of ``BaseValidator.match_predictions``:
  predictions in descending confidence each claim the unclaimed same-class ground truth
  with the highest IoU, and are a true positive when that IoU is ``>= iou_threshold``.
  IoU uses Ultralytics' ``inter / (union + 1e-7)``, so an IoU of exactly 0.5 does not match.
* AP (:func:`average_precision`) is Ultralytics' ``compute_ap``: precision envelope,
  ``np.interp`` at 101 recall points, trapezoidal integration.  mAP50 averages the AP of
  the classes that have ground truth (a class with ground truth but no prediction scores 0;
  a class without ground truth is left out).  Like Ultralytics, a perfect detector scores
  0.995, not 1.0: ``np.interp`` returns the trailing 0 sentinel at recall exactly 1.0.
* Confidence ties are broken by record order (stable sort); Ultralytics' order for ties
  is unspecified, so results can differ only when two predictions of a class share a score.
* :func:`score_images` scores a whole split from one matching at the ten IoU thresholds
  0.50:0.05:0.95 (:func:`match_image_thresholds`): mAP50, mAP50-95 (AP per class averaged over
  thresholds, then over classes) and precision/recall at the confidence that maximises the
  smoothed mean F1, all as Ultralytics' ``ap_per_class`` computes them from the same matches.
* In the bootstrap an image drawn ``k`` times counts ``k`` times: its ground truth and each
  of its predictions get weight ``k``.  A weighted prediction is one point of the PR curve
  (its ``k`` identical copies are not split into ``k`` points), which is exact whenever
  weights are 0/1 and otherwise only changes the linear interpolation between tied scores.

Only numpy is imported here, so the module is usable without torch/ultralytics/mlflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "AP_RECALL_POINTS",
    "IOU_THRESHOLDS",
    "BootstrapResult",
    "DetectionScores",
    "ImageDetections",
    "ImageEval",
    "PerImageRecords",
    "average_precision",
    "batched_map50",
    "box_iou",
    "evaluate_image",
    "map50",
    "match_image",
    "match_image_thresholds",
    "paired_bootstrap",
    "score_images",
    "verdict",
]

AP_RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO / Ultralytics 101-point recall grid
AP_RECALL_POINTS.setflags(write=False)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO / Ultralytics mAP50-95 thresholds
IOU_THRESHOLDS.setflags(write=False)
_IOU_EPS = 1e-7  # Ultralytics box_iou epsilon
_RECORDS_FORMAT_VERSION = 1
_RESAMPLE_BLOCK = 64  # resamples drawn per RNG call: fixed so results depend only on the seed
_TARGET_CHUNK_ELEMENTS = 250_000  # [resamples x predictions] cells per chunk: cache-sized

Verdict = Literal["promote", "reject", "inconclusive"]


_np_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # np.trapz is deprecated in numpy 2


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoidal rule along the last axis: np.trapezoid's arithmetic, vectorised over rows."""
    d = np.diff(x)
    return (d * (y[..., 1:] + y[..., :-1]) / 2.0).sum(axis=-1)


# --------------------------------------------------------------------------------------
# Per-image records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageEval:
    """One image's matched predictions and ground-truth classes (input to PerImageRecords.from_images)."""

    pred_classes: np.ndarray
    pred_confs: np.ndarray
    pred_tp: np.ndarray
    gt_classes: np.ndarray


@dataclass(frozen=True, eq=False)
class PerImageRecords:
    """Columnar per-image evaluation records at IoU 0.5: what mAP50 and the bootstrap need, nothing more.

    ``pred_image``/``pred_class``/``pred_conf``/``pred_tp`` are flat arrays with one entry per
    prediction; ``gt_counts[i, c]`` is the number of ground-truth boxes of class ``c`` in image ``i``.
    Arrays are converted to canonical dtypes and made read-only.
    """

    pred_image: np.ndarray
    pred_class: np.ndarray
    pred_conf: np.ndarray
    pred_tp: np.ndarray
    gt_counts: np.ndarray
    n_classes: int = field(default=-1)

    def __post_init__(self) -> None:
        """Validate shapes/ranges and freeze the arrays."""
        pred_image = np.asarray(self.pred_image, dtype=np.int64).reshape(-1)
        pred_class = np.asarray(self.pred_class, dtype=np.int64).reshape(-1)
        pred_conf = np.asarray(self.pred_conf, dtype=np.float64).reshape(-1)
        pred_tp = np.asarray(self.pred_tp, dtype=bool).reshape(-1)
        gt_counts = np.asarray(self.gt_counts, dtype=np.int64)
        n_classes = int(self.n_classes)
        if gt_counts.ndim == 1 and gt_counts.size == 0:
            gt_counts = gt_counts.reshape(0, max(n_classes, 0))
        if gt_counts.ndim != 2:
            raise ValueError(f"gt_counts must be 2-D [n_images, n_classes], got shape {gt_counts.shape}")
        if n_classes < 0:
            n_classes = gt_counts.shape[1]
        if gt_counts.shape[1] != n_classes:
            raise ValueError(f"gt_counts has {gt_counts.shape[1]} columns but n_classes={n_classes}")
        n = pred_image.shape[0]
        if not (pred_class.shape[0] == pred_conf.shape[0] == pred_tp.shape[0] == n):
            raise ValueError("pred_image, pred_class, pred_conf and pred_tp must have the same length")
        n_images = gt_counts.shape[0]
        if n and (pred_image.min() < 0 or pred_image.max() >= n_images):
            raise ValueError(f"pred_image must lie in [0, {n_images})")
        if n and (pred_class.min() < 0 or pred_class.max() >= n_classes):
            raise ValueError(f"pred_class must lie in [0, {n_classes})")
        if (gt_counts < 0).any():
            raise ValueError("gt_counts must be non-negative")
        if not np.isfinite(pred_conf).all():
            raise ValueError("pred_conf must be finite")
        if pred_tp.any():
            tp_counts = np.zeros((n_images, n_classes), dtype=np.int64)
            np.add.at(tp_counts, (pred_image[pred_tp], pred_class[pred_tp]), 1)
            if (tp_counts > gt_counts).any():
                raise ValueError("an image has more true positives of a class than ground-truth boxes")
        for arr in (pred_image, pred_class, pred_conf, pred_tp, gt_counts):
            arr.setflags(write=False)
        object.__setattr__(self, "pred_image", pred_image)
        object.__setattr__(self, "pred_class", pred_class)
        object.__setattr__(self, "pred_conf", pred_conf)
        object.__setattr__(self, "pred_tp", pred_tp)
        object.__setattr__(self, "gt_counts", gt_counts)
        object.__setattr__(self, "n_classes", n_classes)

    @property
    def n_images(self) -> int:
        """Number of evaluated images (rows of gt_counts)."""
        return int(self.gt_counts.shape[0])

    @property
    def n_predictions(self) -> int:
        """Total number of predictions over all images."""
        return int(self.pred_image.shape[0])

    @classmethod
    def from_images(cls, images: Sequence[ImageEval], n_classes: int) -> PerImageRecords:
        """Build columnar records from per-image evaluations (image index = position in ``images``)."""
        pred_image, pred_class, pred_conf, pred_tp = [], [], [], []
        gt_counts = np.zeros((len(images), n_classes), dtype=np.int64)
        for i, im in enumerate(images):
            cls_i = np.asarray(im.pred_classes, dtype=np.int64).reshape(-1)
            pred_image.append(np.full(cls_i.shape[0], i, dtype=np.int64))
            pred_class.append(cls_i)
            pred_conf.append(np.asarray(im.pred_confs, dtype=np.float64).reshape(-1))
            pred_tp.append(np.asarray(im.pred_tp, dtype=bool).reshape(-1))
            gt = np.asarray(im.gt_classes, dtype=np.int64).reshape(-1)
            if gt.size and (gt.min() < 0 or gt.max() >= n_classes):
                raise ValueError(f"image {i}: gt class outside [0, {n_classes})")
            gt_counts[i] = np.bincount(gt, minlength=n_classes)

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return cls(
            pred_image=cat(pred_image, np.int64),
            pred_class=cat(pred_class, np.int64),
            pred_conf=cat(pred_conf, np.float64),
            pred_tp=cat(pred_tp, bool),
            gt_counts=gt_counts,
            n_classes=n_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (plain lists) so the records can be logged as an artifact."""
        return {
            "format_version": _RECORDS_FORMAT_VERSION,
            "n_classes": self.n_classes,
            "n_images": self.n_images,
            "pred_image": self.pred_image.tolist(),
            "pred_class": self.pred_class.tolist(),
            "pred_conf": self.pred_conf.tolist(),
            "pred_tp": self.pred_tp.tolist(),
            "gt_counts": self.gt_counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerImageRecords:
        """Inverse of :meth:`to_dict` (validates the payload)."""
        version = data.get("format_version", _RECORDS_FORMAT_VERSION)
        if version != _RECORDS_FORMAT_VERSION:
            raise ValueError(f"unsupported PerImageRecords format_version {version!r}")
        n_classes = int(data["n_classes"])
        gt_counts = np.asarray(data["gt_counts"], dtype=np.int64)
        if gt_counts.size == 0:
            gt_counts = gt_counts.reshape(int(data.get("n_images", 0)), n_classes)
        records = cls(
            pred_image=np.asarray(data["pred_image"], dtype=np.int64),
            pred_class=np.asarray(data["pred_class"], dtype=np.int64),
            pred_conf=np.asarray(data["pred_conf"], dtype=np.float64),
            pred_tp=np.asarray(data["pred_tp"], dtype=bool),
            gt_counts=gt_counts,
            n_classes=n_classes,
        )
        if "n_images" in data and int(data["n_images"]) != records.n_images:
            raise ValueError("n_images does not match gt_counts")
        return records


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------


def box_iou(boxes1_xyxy: np.ndarray, boxes2_xyxy: np.ndarray, eps: float = _IOU_EPS) -> np.ndarray:
    """Pairwise IoU [N, M] of xyxy boxes, with Ultralytics' epsilon in the denominator."""
    a = np.asarray(boxes1_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2_xyxy, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + eps)


def _class_iou_by_confidence(
    pred_boxes_xyxy: np.ndarray,
    pred_classes: np.ndarray,
    pred_confs: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    gt_classes: np.ndarray,
) -> tuple[int, int, np.ndarray | None, np.ndarray | None]:
    """The matchers' common input: (n_pred, n_gt, confidence order, [M, N] IoU of the ground truth against the
    predictions in descending confidence, other-class pairs zeroed as in Ultralytics). Order and IoU are None when
    either side is empty; mismatched lengths or box shapes raise ValueError."""
    pred_classes = np.asarray(pred_classes).reshape(-1)
    pred_confs = np.asarray(pred_confs, dtype=np.float64).reshape(-1)
    gt_classes = np.asarray(gt_classes).reshape(-1)
    n_pred, n_gt = pred_classes.shape[0], gt_classes.shape[0]
    if pred_confs.shape[0] != n_pred:
        raise ValueError("pred_confs and pred_classes must have the same length")
    if n_pred == 0 or n_gt == 0:
        return n_pred, n_gt, None, None
    order = np.argsort(-pred_confs, kind="stable")
    iou = box_iou(gt_boxes_xyxy, np.asarray(pred_boxes_xyxy).reshape(-1, 4)[order])
    if iou.shape != (n_gt, n_pred):
        raise ValueError("box arrays must be [N, 4] and match the class arrays")
    iou *= gt_classes[:, None] == pred_classes[order][None, :]
    return n_pred, n_gt, order, iou


def match_image(
    pred_boxes_xyxy: np.ndarray,
    pred_classes: np.ndarray,
    pred_confs: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    gt_classes: np.ndarray,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Greedy COCO/Ultralytics matching at one IoU threshold: a TP flag per prediction, in input order."""
    n_pred, n_gt, order, iou = _class_iou_by_confidence(pred_boxes_xyxy, pred_classes, pred_confs, gt_boxes_xyxy,
                                                        gt_classes)
    tp = np.zeros(n_pred, dtype=bool)
    if iou is None:
        return tp
    matched = np.zeros(n_gt, dtype=bool)
    for j in np.flatnonzero((iou >= iou_threshold).any(axis=0)):  # descending confidence
        available = np.where(matched, 0.0, iou[:, j])
        k = int(available.argmax())
        if available[k] >= iou_threshold:
            matched[k] = True
            tp[order[j]] = True
    return tp


def evaluate_image(
    pred_boxes_xyxy: np.ndarray,
    pred_classes: np.ndarray,
    pred_confs: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    gt_classes: np.ndarray,
    iou_threshold: float = 0.5,
) -> ImageEval:
    """Match one image and package it for :meth:`PerImageRecords.from_images`."""
    tp = match_image(pred_boxes_xyxy, pred_classes, pred_confs, gt_boxes_xyxy, gt_classes, iou_threshold)
    return ImageEval(
        pred_classes=np.asarray(pred_classes, dtype=np.int64).reshape(-1),
        pred_confs=np.asarray(pred_confs, dtype=np.float64).reshape(-1),
        pred_tp=tp,
        gt_classes=np.asarray(gt_classes, dtype=np.int64).reshape(-1),
    )


# --------------------------------------------------------------------------------------
# AP / mAP50 (reference, Ultralytics-identical)
# --------------------------------------------------------------------------------------


def average_precision(tp_sorted: np.ndarray, n_gt: int) -> float:
    """Ultralytics 101-point interpolated AP of one class, predictions already sorted by confidence."""
    tp_sorted = np.asarray(tp_sorted, dtype=np.float64).reshape(-1)
    if n_gt <= 0 or tp_sorted.size == 0:
        return 0.0
    tpc = np.cumsum(tp_sorted)
    fpc = np.cumsum(1.0 - tp_sorted)
    recall = tpc / float(n_gt)
    precision = tpc / (tpc + fpc)
    mrec = np.concatenate(([0.0], recall, [recall[-1]], [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    return float(_np_trapezoid(np.interp(AP_RECALL_POINTS, mrec, mpre), AP_RECALL_POINTS))


def map50(records: PerImageRecords) -> tuple[float, dict[int, float]]:
    """mAP50 and per-class AP50 over the classes that have ground truth (Ultralytics semantics)."""
    n_gt = records.gt_counts.sum(axis=0)
    order = np.argsort(-records.pred_conf, kind="stable")
    cls_sorted = records.pred_class[order]
    tp_sorted = records.pred_tp[order]
    per_class: dict[int, float] = {}
    for c in np.flatnonzero(n_gt > 0):
        per_class[int(c)] = average_precision(tp_sorted[cls_sorted == c], int(n_gt[c]))
    overall = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return overall, per_class


# --------------------------------------------------------------------------------------
# A whole split: mAP50, mAP50-95, precision/recall at the best-F1 confidence
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageDetections:
    """One image's predictions and ground truth in pixel xyxy (input to :func:`score_images`)."""

    pred_boxes: np.ndarray
    pred_classes: np.ndarray
    pred_confs: np.ndarray
    gt_boxes: np.ndarray
    gt_classes: np.ndarray


@dataclass(frozen=True, eq=False)
class DetectionScores:
    """Everything an evaluation reports, computed from one set of matches.

    ``records`` are the per-image records at IoU 0.5: ``map50(records)`` reproduces ``map50`` exactly.
    ``precision``/``recall`` are the class means at the confidence that maximises the mean F1 (smoothed),
    Ultralytics' ``ap_per_class`` operating point; ``conf_best_f1`` is that confidence.
    """

    records: PerImageRecords
    map50: float
    map50_95: float
    per_class_ap50: dict[int, float]
    per_class_ap50_95: dict[int, float]
    precision: float
    recall: float
    conf_best_f1: float


def match_image_thresholds(
    pred_boxes_xyxy: np.ndarray,
    pred_classes: np.ndarray,
    pred_confs: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    gt_classes: np.ndarray,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """:func:`match_image` at several IoU thresholds at once: TP flags [N, T] in input order.

    Each threshold is matched independently (as Ultralytics' ``match_predictions`` does), so column t
    equals ``match_image(..., iou_threshold=thresholds[t])``.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    n_t = thresholds.shape[0]
    n_pred, n_gt, order, iou = _class_iou_by_confidence(pred_boxes_xyxy, pred_classes, pred_confs, gt_boxes_xyxy,
                                                        gt_classes)
    tp = np.zeros((n_pred, n_t), dtype=bool)
    if iou is None or n_t == 0:
        return tp
    matched = np.zeros((n_gt, n_t), dtype=bool)
    cols = np.arange(n_t)
    for j in np.flatnonzero((iou >= thresholds.min()).any(axis=0)):  # descending confidence
        available = np.where(matched, 0.0, iou[:, j, None])
        k = available.argmax(axis=0)
        hit = available[k, cols] >= thresholds
        matched[k[hit], cols[hit]] = True
        tp[order[j]] = hit
    return tp


def _smooth(y: np.ndarray, f: float = 0.1) -> np.ndarray:
    """Box filter of width f * len(y) (Ultralytics' ``smooth``), used to pick the best-F1 confidence."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def _best_f1_point(
    tp50_sorted: np.ndarray, conf_sorted: np.ndarray, cls_sorted: np.ndarray, n_gt: np.ndarray
) -> tuple[float, float, float]:
    """Mean precision and recall over classes with ground truth at the best smoothed mean-F1 confidence."""
    classes = np.flatnonzero(n_gt > 0)
    if classes.size == 0:
        return 0.0, 0.0, 0.0
    x = np.linspace(0, 1, 1000)
    p_curve = np.zeros((classes.size, x.size))
    r_curve = np.zeros((classes.size, x.size))
    for row, c in enumerate(classes):
        sel = cls_sorted == c
        if not sel.any():
            continue
        tpc = np.cumsum(tp50_sorted[sel])
        fpc = np.cumsum(1.0 - tp50_sorted[sel])
        r_curve[row] = np.interp(-x, -conf_sorted[sel], tpc / (n_gt[c] + 1e-16), left=0)
        p_curve[row] = np.interp(-x, -conf_sorted[sel], tpc / (tpc + fpc), left=1)
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
    i = int(_smooth(f1.mean(0), 0.1).argmax())
    return float(p_curve[:, i].mean()), float(r_curve[:, i].mean()), float(x[i])


def score_images(images: Sequence[ImageDetections], n_classes: int) -> DetectionScores:
    """Match every image at the ten COCO IoU thresholds once and derive all reported metrics from it."""
    per_image: list[ImageEval] = []
    tp_all, conf_all, cls_all = [], [], []
    for im in images:
        tp = match_image_thresholds(im.pred_boxes, im.pred_classes, im.pred_confs, im.gt_boxes, im.gt_classes)
        ev = ImageEval(
            pred_classes=np.asarray(im.pred_classes, dtype=np.int64).reshape(-1),
            pred_confs=np.asarray(im.pred_confs, dtype=np.float64).reshape(-1),
            pred_tp=tp[:, 0],
            gt_classes=np.asarray(im.gt_classes, dtype=np.int64).reshape(-1),
        )
        per_image.append(ev)
        tp_all.append(tp)
        conf_all.append(ev.pred_confs)
        cls_all.append(ev.pred_classes)
    records = PerImageRecords.from_images(per_image, n_classes)
    overall50, per_class50 = map50(records)
    n_t = IOU_THRESHOLDS.shape[0]
    tp_flat = np.concatenate(tp_all) if tp_all else np.zeros((0, n_t), dtype=bool)
    order = np.argsort(-records.pred_conf, kind="stable")  # the same order map50 uses
    tp_sorted, cls_sorted = tp_flat[order], records.pred_class[order]
    n_gt = records.gt_counts.sum(axis=0)
    per_class5095: dict[int, float] = {}
    for c in per_class50:
        sel = cls_sorted == c
        aps = [average_precision(tp_sorted[sel, t], int(n_gt[c])) for t in range(n_t)]
        per_class5095[c] = float(np.mean(aps))
    overall5095 = float(np.mean(list(per_class5095.values()))) if per_class5095 else 0.0
    precision, recall, conf_f1 = _best_f1_point(
        tp_sorted[:, 0].astype(np.float64) if tp_sorted.size else np.zeros(0),
        records.pred_conf[order], cls_sorted, n_gt,
    )
    return DetectionScores(
        records=records,
        map50=overall50,
        map50_95=overall5095,
        per_class_ap50=per_class50,
        per_class_ap50_95=per_class5095,
        precision=precision,
        recall=recall,
        conf_best_f1=conf_f1,
    )


# --------------------------------------------------------------------------------------
# Vectorised weighted mAP50 (bootstrap engine)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ClassCurve:
    """One class's predictions in descending confidence, split into TP and FP lists (built once).

    ``tp_img[k]``/``tp_pos[k]``: image and curve position of the k-th true positive;
    ``fp_img``: images of the false positives ranked before the last TP, in curve order, led by
    an index that points at an all-zero weight column; ``fp_before[k]``: FPs ranked before TP k.
    """

    class_id: int
    n_points: int
    tp_img: np.ndarray
    tp_pos: np.ndarray
    fp_img: np.ndarray
    fp_before: np.ndarray


def _prepare(records: PerImageRecords) -> list[_ClassCurve]:
    """Sort each class's predictions once (same stable order as :func:`map50`)."""
    order = np.argsort(-records.pred_conf, kind="stable")
    cls_sorted = records.pred_class[order]
    img_sorted = records.pred_image[order]
    tp_sorted = records.pred_tp[order]
    pad_index = records.n_images  # the zero column appended to the weights
    curves = []
    for c in range(records.n_classes):
        sel = cls_sorted == c
        img_c, tp_c = img_sorted[sel], tp_sorted[sel]
        tp_pos = np.flatnonzero(tp_c)
        fp_before = (tp_pos - np.arange(tp_pos.shape[0])).astype(np.int64)
        # FPs ranked after the last TP never reach a point the AP formula looks at: drop them.
        n_fp_used = int(fp_before[-1]) if tp_pos.shape[0] else 0
        curves.append(
            _ClassCurve(
                class_id=c,
                n_points=int(img_c.shape[0]),
                tp_img=np.ascontiguousarray(img_c[tp_c]),
                tp_pos=tp_pos,
                fp_img=np.concatenate(([pad_index], img_c[~tp_c][:n_fp_used])).astype(np.int64),
                fp_before=fp_before,
            )
        )
    return curves


class _Workspace:
    """Reusable scratch buffers: fresh large arrays cost page faults on every bootstrap chunk."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, rows: int, cols: int, dtype: type) -> np.ndarray:
        """A C-contiguous [rows, cols] view of buffer ``name`` (grown when needed)."""
        size = rows * cols
        buf = self._bufs.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._bufs[name] = buf
        return buf[:size].reshape(rows, cols)


def _weighted_ap_rows(
    curve: _ClassCurve, weights_ext: np.ndarray, n_gt: np.ndarray, ws: _Workspace | None = None
) -> np.ndarray:
    """AP of one class for each row of int64 image weights; reproduces compute_ap row by row.

    ``weights_ext`` is [R, n_images + 1] with a zero last column; ``n_gt`` [R] (int) must be > 0.
    Rather than materialising compute_ap's padded curves ``mrec = [0, r_1..r_n, r_n, 1]`` and
    precision envelope and calling np.interp per row, for each recall point x we find the index
    ``j`` np.interp uses (last ``mrec[j] <= x``) and apply its formula to ``j`` and ``j + 1``:

    * recall only rises at true positives and ``recall = tpc / n_gt`` is monotone in the integer
      TP count, so ``recall <= x`` iff ``tpc <= L(x)``, L the largest integer satisfying it
      (bit-exact); ``j + 1`` is then the first TP whose cumulative count exceeds ``L(x)``, found
      with one searchsorted, and ``j`` is the point just before it;
    * precision only rises at true positives too, so the envelope at a TP is a suffix maximum
      over the TP list; it is needed at 101 sorted positions per row: a segmented
      ``np.maximum.reduceat`` plus a reverse running max over 102 columns;
    * false positives only enter through the weight ranked before each TP: a cumsum over the
      FP list sampled at each TP.

    Counts are accumulated in int64 (exact, and much faster than float cumsum).
    """
    rows = weights_ext.shape[0]
    n_tp = curve.tp_img.shape[0]
    x = AP_RECALL_POINTS
    if n_tp == 0:
        return np.zeros(rows)  # recall stays 0: AP 0

    ws = _Workspace() if ws is None else ws
    wt = np.take(weights_ext, curve.tp_img, axis=1, out=ws.get("wt", rows, n_tp, np.int64), mode="clip")
    tpc = np.cumsum(wt, axis=1, out=ws.get("tpc", rows, n_tp, np.int64))  # weighted TPs up to TP k
    # Weighted FPs ranked before TP k: cumsum over the FP list (led by a zero-weight pad), sampled.
    n_fp_slots = curve.fp_img.shape[0]
    wf = np.take(weights_ext, curve.fp_img, axis=1, out=ws.get("wf", rows, n_fp_slots, np.int64), mode="clip")
    np.cumsum(wf, axis=1, out=wf)
    fpc = np.take(wf, curve.fp_before, axis=1, out=ws.get("fpc", rows, n_tp, np.int64), mode="clip")
    # Precision at each TP, padded with a trailing 0 (compute_ap's end sentinel).  A zero-weight
    # TP preceded only by zero-weight predictions would be 0/0: use 0, it never matters.
    cw = np.add(tpc, fpc, out=ws.get("cw", rows, n_tp, np.int64))
    np.maximum(cw, 1, out=cw)
    prec = ws.get("prec", rows, n_tp + 1, np.float64)
    np.divide(tpc, cw, out=prec[:, :n_tp])
    prec[:, n_tp] = 0.0
    row_ids = np.arange(rows, dtype=np.int64)[:, None]

    g = n_gt.astype(np.float64)[:, None]
    # L(x): largest integer with L / g <= x (float semantics), from floor(x * g) corrected by +-1.
    base = np.floor(x * g) - 1.0
    level = (base + ((base + 1.0) / g <= x) + ((base + 2.0) / g <= x)).astype(np.int64)
    # k = first TP with tpc > L: searchsorted on row-offset integer keys (rows stay separated).
    stride = int(n_gt.max()) + 2  # tpc <= n_gt
    keys = np.add(tpc, row_ids * stride, out=ws.get("cw", rows, n_tp, np.int64)).ravel()
    k = np.searchsorted(keys, (level + row_ids * stride).ravel(), side="right").reshape(rows, -1)
    k -= row_ids * n_tp
    beyond = k == n_tp  # x at or past the final recall: np.interp returns 0 there
    kc = np.minimum(k, n_tp - 1)
    pos = curve.tp_pos[kc]  # curve position of TP k (j + 1 in compute_ap's padded index)

    # Envelope at TP k: max(prec[k:]) via segments [k_1, k_2), ..., [k_101, K], [K, next row).
    bounds = np.concatenate(
        [np.zeros((rows, 1), dtype=np.int64), k, np.full((rows, 1), n_tp, dtype=np.int64)], axis=1
    )
    bounds += row_ids * (n_tp + 1)
    seg = np.maximum.reduceat(prec.ravel(), bounds.ravel()).reshape(rows, -1)[:, 1:]
    env_next = np.maximum.accumulate(seg[:, ::-1], axis=1)[:, ::-1][:, :-1]  # [R, 101]

    # The point just before TP k: the (0 recall, 1 precision) sentinel when TP k ranks first.
    tp_b = np.take_along_axis(tpc, kc, axis=1) - np.take_along_axis(wt, kc, axis=1)
    fp_b = np.take_along_axis(fpc, kc, axis=1)
    first = pos == 0
    prec_j = tp_b / np.maximum(tp_b + fp_b, 1)
    env_j = np.where(first, 1.0, np.maximum(prec_j, env_next))
    rec_j = np.where(first, 0.0, tp_b / g)
    rec_next = np.take_along_axis(tpc, kc, axis=1) / g
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (env_next - env_j) / (rec_next - rec_j)
        y = slope * (x - rec_j) + env_j
    y = np.where(rec_j == x, env_j, y)
    y = np.where(beyond, 0.0, y)
    return _trapezoid(y, x)


def _chunk_rows(curves: list[_ClassCurve]) -> int:
    """Resample rows per chunk so that the [rows, n_preds] working arrays stay cache-sized."""
    n_max = max((max(c.tp_img.shape[0] + 1, c.fp_img.shape[0]) for c in curves), default=0)
    return int(max(1, min(_RESAMPLE_BLOCK, _TARGET_CHUNK_ELEMENTS // max(n_max + 3, 1))))


def _batched_map50_prepared(
    curves: list[_ClassCurve], n_gt: np.ndarray, weights: np.ndarray, ws: _Workspace | None = None
) -> np.ndarray:
    """mAP50 for each row of int64 image weights [R, n_images], given n_gt [R, n_classes]."""
    ws = _Workspace() if ws is None else ws
    rows = weights.shape[0]
    weights_ext = np.concatenate([weights, np.zeros((rows, 1), dtype=np.int64)], axis=1)
    ap_sum = np.zeros(rows)
    n_present = np.zeros(rows)
    step = _chunk_rows(curves)
    for curve in curves:
        g = n_gt[:, curve.class_id]
        present = g > 0
        if not present.any():
            continue
        n_present += present
        if curve.tp_img.shape[0] == 0:
            continue  # class with ground truth but no true positive: AP 0
        for s in range(0, rows, step):
            sl = slice(s, min(s + step, rows))
            ap = _weighted_ap_rows(curve, weights_ext[sl], np.where(present[sl], g[sl], 1), ws)
            ap_sum[sl] += np.where(present[sl], ap, 0.0)
    return np.divide(ap_sum, n_present, out=np.zeros(rows), where=n_present > 0)


def batched_map50(records: PerImageRecords, weights: np.ndarray) -> np.ndarray:
    """Vectorised mAP50 for each row of non-negative integer image weights [R, n_images] (bootstrap core)."""
    w = np.asarray(weights)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != records.n_images:
        raise ValueError(f"weights must have shape [R, {records.n_images}], got {w.shape}")
    if (w < 0).any() or (w != np.round(w)).any():
        raise ValueError("weights must be non-negative integers (image multiplicities)")
    w = np.ascontiguousarray(w, dtype=np.int64)
    return _batched_map50_prepared(_prepare(records), w @ records.gt_counts, w)


# --------------------------------------------------------------------------------------
# Paired bootstrap and verdict
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Paired-bootstrap summary of mAP50(challenger) - mAP50(champion)."""

    delta_mean: float
    ci_low: float
    ci_high: float
    n_resamples: int
    seed: int
    point_delta: float
    confidence: float = 0.95
    champion_map50: float = float("nan")
    challenger_map50: float = float("nan")
    std_error: float = float("nan")  # standard deviation of the resampled deltas (the bootstrap standard error)
    n_images: int = -1  # test images resampled (-1: not recorded)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for logging as params/metrics/JSON."""
        return {
            "delta_mean": self.delta_mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "point_delta": self.point_delta,
            "confidence": self.confidence,
            "champion_map50": self.champion_map50,
            "challenger_map50": self.challenger_map50,
            "std_error": self.std_error,
            "n_images": self.n_images,
        }


def _check_paired(champion: PerImageRecords, challenger: PerImageRecords) -> None:
    """Both records must describe the same images with the same ground truth."""
    if champion.n_images != challenger.n_images:
        raise ValueError(
            f"champion covers {champion.n_images} images but challenger covers {challenger.n_images}"
        )
    if champion.n_classes != challenger.n_classes:
        raise ValueError(
            f"champion has {champion.n_classes} classes but challenger has {challenger.n_classes}"
        )
    if not np.array_equal(champion.gt_counts, challenger.gt_counts):
        raise ValueError("champion and challenger records have different ground truth (gt_counts differ)")


def _iter_weight_blocks(rng: np.random.Generator, n_resamples: int, n_images: int) -> Iterable[np.ndarray]:
    """Yield [block, n_images] bootstrap multiplicities (image drawn k times -> weight k)."""
    for start in range(0, n_resamples, _RESAMPLE_BLOCK):
        b = min(_RESAMPLE_BLOCK, n_resamples - start)
        draws = rng.integers(0, n_images, size=(b, n_images))
        draws += np.arange(b)[:, None] * n_images
        yield np.bincount(draws.ravel(), minlength=b * n_images).reshape(b, n_images).astype(np.int64)


def paired_bootstrap(
    champion: PerImageRecords,
    challenger: PerImageRecords,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired image bootstrap of the mAP50 delta (challenger - champion) with a percentile CI."""
    _check_paired(champion, challenger)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    champ_map, _ = map50(champion)
    chall_map, _ = map50(challenger)
    point_delta = chall_map - champ_map
    if champion.n_images == 0:
        deltas = np.zeros(n_resamples)
    else:
        champ_curves, chall_curves = _prepare(champion), _prepare(challenger)
        gt = champion.gt_counts
        rng = np.random.default_rng(seed)
        ws = _Workspace()
        parts = []
        for w in _iter_weight_blocks(rng, n_resamples, champion.n_images):
            n_gt = w @ gt  # [block, n_classes], shared by both models
            champ = _batched_map50_prepared(champ_curves, n_gt, w, ws)
            chall = _batched_map50_prepared(chall_curves, n_gt, w, ws)
            parts.append(chall - champ)
        deltas = np.concatenate(parts)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(deltas, [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapResult(
        delta_mean=float(deltas.mean()),
        ci_low=float(lo),
        ci_high=float(hi),
        n_resamples=int(n_resamples),
        seed=int(seed),
        point_delta=float(point_delta),
        confidence=float(confidence),
        champion_map50=float(champ_map),
        challenger_map50=float(chall_map),
        std_error=float(deltas.std(ddof=1)) if n_resamples > 1 else 0.0,
        n_images=int(champion.n_images),
    )


def verdict(result: BootstrapResult, required_improvement: float) -> Verdict:
    """Gate decision: promote if the whole CI clears the required gain, reject if it lies below it.

    Like the point rule, a tie never promotes: with a required gain of 0 the interval must lie strictly
    above 0 to promote, and an interval at or below 0 (identical models give exactly [0, 0]) rejects.
    """
    if result.ci_low >= required_improvement and result.ci_low > 0:
        return "promote"
    if result.ci_high < required_improvement or result.ci_high <= 0:
        return "reject"
    return "inconclusive"
