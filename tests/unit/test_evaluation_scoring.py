"""The evaluator's pieces without a model: multi-threshold matching and scores against Ultralytics' arithmetic,
YOLO label and split-list reading, the records artifact, the comparison picture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pfp_mlops.domain.detection_metrics import (
    IOU_THRESHOLDS,
    ImageDetections,
    map50,
    match_image,
    match_image_thresholds,
    score_images,
)
from pfp_mlops.domain.errors import DataError


def _random_images(seed: int, n_images: int = 60, n_classes: int = 3) -> list[ImageDetections]:
    """Ground truth plus jittered copies (various IoUs), duplicates and pure false positives; no score ties."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        n_gt = rng.integers(0, 5)
        xy = rng.uniform(0, 60, (n_gt, 2))
        wh = rng.uniform(8, 40, (n_gt, 2))
        gt = np.concatenate([xy, xy + wh], axis=1)
        gc = rng.integers(0, n_classes, n_gt)
        keep = rng.random(n_gt) < 0.8
        jitter = rng.normal(0, 3.0, (int(keep.sum()), 4))
        pb = [gt[keep] + jitter, gt[keep][: rng.integers(0, keep.sum() + 1)] + rng.normal(0, 6, (1, 4))]
        pc = [np.where(rng.random(keep.sum()) < 0.9, gc[keep], rng.integers(0, n_classes, keep.sum()))]
        pc.append(gc[keep][: len(pb[1])])
        n_fp = rng.poisson(1.5)
        fxy = rng.uniform(0, 80, (n_fp, 2))
        pb.append(np.concatenate([fxy, fxy + rng.uniform(5, 30, (n_fp, 2))], axis=1))
        pc.append(rng.integers(0, n_classes, n_fp))
        boxes, classes = np.concatenate(pb), np.concatenate(pc)
        out.append(ImageDetections(boxes, classes, rng.uniform(0.001, 1.0, len(classes)), gt, gc))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_threshold_matching_equals_single_threshold_matching(seed):
    """Column t of match_image_thresholds is match_image at IOU_THRESHOLDS[t] (thresholds are independent)."""
    for im in _random_images(seed, n_images=30):
        multi = match_image_thresholds(im.pred_boxes, im.pred_classes, im.pred_confs, im.gt_boxes, im.gt_classes)
        for t, thr in enumerate(IOU_THRESHOLDS):
            single = match_image(im.pred_boxes, im.pred_classes, im.pred_confs, im.gt_boxes, im.gt_classes, thr)
            assert np.array_equal(multi[:, t], single)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scores_equal_ultralytics_ap_per_class_on_the_same_matches(seed):
    """mAP50, mAP50-95, per-class AP50 and max-F1 precision/recall are Ultralytics' own numbers (1e-12)."""
    from ultralytics.utils.metrics import ap_per_class

    images = _random_images(seed)
    s = score_images(images, 3)
    tp = np.concatenate([match_image_thresholds(i.pred_boxes, i.pred_classes, i.pred_confs, i.gt_boxes,
                                                i.gt_classes) for i in images])
    conf = np.concatenate([i.pred_confs for i in images])
    pcls = np.concatenate([i.pred_classes for i in images])
    tcls = np.concatenate([i.gt_classes for i in images])
    _, _, p, r, _, ap, classes, *_ = ap_per_class(tp, conf, pcls, tcls)
    assert s.map50 == pytest.approx(ap[:, 0].mean(), abs=1e-12)
    assert s.map50_95 == pytest.approx(ap.mean(), abs=1e-12)
    assert s.precision == pytest.approx(p.mean(), abs=1e-12)
    assert s.recall == pytest.approx(r.mean(), abs=1e-12)
    assert {int(c): float(a) for c, a in zip(classes, ap[:, 0], strict=True)} == pytest.approx(s.per_class_ap50)
    assert map50(s.records)[0] == s.map50  # the records reproduce the reported mAP50 exactly


def test_scores_of_an_empty_split_are_zero():
    s = score_images([], 2)
    assert (s.map50, s.map50_95, s.precision, s.recall, s.records.n_images) == (0.0, 0.0, 0.0, 0.0, 0)


# --- labels and split lists ------------------------------------------------------------------------------------


def _image(root: Path, name: str, label: str | None) -> Path:
    img = root / "images" / name
    img.parent.mkdir(parents=True, exist_ok=True)
    img.write_bytes(b"")
    if label is not None:
        lab = root / "labels" / (Path(name).stem + ".txt")
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(label)
    return img


def test_labels_are_read_like_ultralytics(tmp_path):
    """Boxes scale to pixels, polygons become their bounding box, duplicate rows count once, no file = no objects."""
    from pfp_mlops.adapters.yolo import read_yolo_labels

    img = _image(tmp_path, "a.png", "0 0.5 0.5 0.2 0.4\n0 0.5 0.5 0.2 0.4\n\n2 0.1 0.1 0.3 0.1 0.2 0.5\n")
    boxes, cls = read_yolo_labels(img, width=100, height=50, n_classes=3)
    order = np.argsort(cls)
    assert cls[order].tolist() == [0, 2]
    assert boxes[order] == pytest.approx(np.array([[40, 15, 60, 35], [10, 5, 30, 25]]))
    boxes, cls = read_yolo_labels(_image(tmp_path, "b.png", None), width=10, height=10, n_classes=3)
    assert boxes.shape == (0, 4) and cls.shape == (0,)


@pytest.mark.parametrize("row", ["3 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1", "x 0.5 0.5 0.1 0.1", "1.5 0.5 0.5 0.1 0.1"])
def test_bad_label_rows_are_data_errors_naming_the_file(tmp_path, row):
    from pfp_mlops.adapters.yolo import read_yolo_labels

    img = _image(tmp_path, "a.png", row + "\n")
    with pytest.raises(DataError, match=r"a\.txt:1"):
        read_yolo_labels(img, width=10, height=10, n_classes=3)


def test_split_images_are_sorted_and_resolved(tmp_path):
    """The list file's order does not matter; relative lines resolve against the list's folder."""
    from pfp_mlops.adapters.yolo import split_images

    b, a = _image(tmp_path, "b.png", None), _image(tmp_path, "a.png", None)
    ds = tmp_path / "dataset"
    ds.mkdir()
    (ds / "test.txt").write_text(f"{b}\n../images/a.png\n\n")
    (ds / "data.yaml").write_text(f"path: {ds}\ntest: test.txt\n")
    assert split_images(str(ds / "data.yaml"), "test") == [a, b]
    with pytest.raises(DataError, match="does not exist"):
        split_images(str(ds / "data.yaml"), "valid")


# --- the records artifact and the picture ------------------------------------------------------------------------


def test_records_artifact_round_trips_with_nan_classes():
    """The per-image records file written next to a result reads back to the same result and records."""
    from pfp_mlops.adapters.yolo import SplitEvaluation
    from pfp_mlops.domain.models import EvalResult
    from pfp_mlops.services.evaluation import parse_records_payload, records_payload

    s = score_images(_random_images(5, n_images=12), 3)
    result = EvalResult(map50=s.map50, map50_95=s.map50_95, precision=s.precision, recall=s.recall,
                        per_class_ap50={"a": s.per_class_ap50.get(0, math.nan), "b": math.nan, "c": 0.5},
                        latency_ms=2.0, n_images=12, split="test", split_fingerprint="sf", protocol_fingerprint="pf")
    ev = SplitEvaluation(result=result, records=s.records, images=[f"images/{i}.png" for i in range(12)])
    back = parse_records_payload(json.loads(json.dumps(records_payload(ev, weights_sha256="abc"), allow_nan=False)))
    assert back.images == ev.images and math.isnan(back.result.per_class_ap50["b"])
    assert back.result.map50 == result.map50 and map50(back.records)[0] == result.map50
    assert np.array_equal(back.records.pred_tp, s.records.pred_tp)


def test_comparison_picture_is_a_png(tmp_path):
    from pfp_mlops.adapters.plots import comparison_png

    out = comparison_png(tmp_path / "c.png", class_names=["rock", "paper", "scissors"],
                         champion_ap50={"rock": 0.5, "paper": math.nan, "scissors": 0.7},
                         challenger_ap50={"rock": 0.6, "paper": 0.4, "scissors": 0.6}, champion_label="v1",
                         challenger_label="v2", delta=0.05, ci_low=-0.02, ci_high=0.11, required=0.006,
                         confidence=0.95, verdict="inconclusive", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
