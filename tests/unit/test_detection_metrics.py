"""Detection metrics: matcher, Ultralytics-identical AP/mAP50, vectorised bootstrap and verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.coco_reference import coco_eval_at_50

from pfp_mlops.domain.detection_metrics import (
    AP_RECALL_POINTS,
    BootstrapResult,
    ImageEval,
    PerImageRecords,
    average_precision,
    batched_map50,
    box_iou,
    evaluate_image,
    map50,
    match_image,
    paired_bootstrap,
    verdict,
)

# AP of a perfect ranking under Ultralytics' compute_ap: np.interp returns the trailing 0
# sentinel at recall exactly 1.0, so the last trapezoid is (1 + 0) / 2 * 0.01.
PERFECT_AP = 0.995


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _records(images: list[tuple[list[int], list[float], list[bool], list[int]]], n_classes: int):
    """(pred_classes, pred_confs, pred_tp, gt_classes) per image -> PerImageRecords."""
    return PerImageRecords.from_images(
        [
            ImageEval(np.array(c, int), np.array(s, float), np.array(t, bool), np.array(g, int))
            for c, s, t, g in images
        ],
        n_classes,
    )


def _random_records(seed: int, n_images: int = 200, n_classes: int = 4, tie_decimals: int | None = None):
    """Random but consistent records (TPs never exceed GT); class n_classes-1 has no GT at all."""
    rng = np.random.default_rng(seed)
    gt = rng.poisson(1.0, (n_images, n_classes))
    gt[:, -1] = 0
    imgs, clss, confs, tps = [], [], [], []
    for i in range(n_images):
        for c in range(n_classes):
            n_tp = rng.binomial(gt[i, c], 0.7)
            n_fp = rng.poisson(0.6)
            imgs += [i] * (n_tp + n_fp)
            clss += [c] * (n_tp + n_fp)
            tps += [True] * n_tp + [False] * n_fp
            confs += list(rng.beta(4, 2, n_tp)) + list(rng.beta(2, 3, n_fp))
    conf = np.array(confs)
    if tie_decimals is not None:
        conf = conf.round(tie_decimals)
    return PerImageRecords(np.array(imgs), np.array(clss), conf, np.array(tps, bool), gt, n_classes)


def _reference_weighted_map50(records: PerImageRecords, w: np.ndarray) -> float:
    """Slow, literal weighted mAP50: drop zero-weight predictions, weighted cumsums, np.interp per class."""
    order = np.argsort(-records.pred_conf, kind="stable")
    n_gt = w @ records.gt_counts
    aps = []
    for c in np.flatnonzero(n_gt > 0):
        sel = order[(records.pred_class[order] == c) & (w[records.pred_image[order]] > 0)]
        if sel.size == 0:
            aps.append(0.0)
            continue
        pw = w[records.pred_image[sel]].astype(float)
        tp = records.pred_tp[sel]
        tpc, fpc = np.cumsum(pw * tp), np.cumsum(pw * ~tp)
        recall, precision = tpc / n_gt[c], tpc / (tpc + fpc)
        mrec = np.concatenate(([0.0], recall, [recall[-1]], [1.0]))
        mpre = np.flip(np.maximum.accumulate(np.flip(np.concatenate(([1.0], precision, [0.0], [0.0])))))
        y = np.interp(AP_RECALL_POINTS, mrec, mpre)
        aps.append(float(((y[1:] + y[:-1]) / 2.0 * np.diff(AP_RECALL_POINTS)).sum()))
    return float(np.mean(aps)) if aps else 0.0


def _shift(records: PerImageRecords, tp_boost: float, seed: int) -> PerImageRecords:
    """Same GT, a model whose TPs get higher confidence (a better ranking) by ``tp_boost``."""
    rng = np.random.default_rng(seed)
    conf = (
        records.pred_conf
        + np.where(records.pred_tp, tp_boost, 0.0)
        + rng.normal(0, 1e-6, records.n_predictions)
    )
    return PerImageRecords(
        records.pred_image, records.pred_class, conf, records.pred_tp, records.gt_counts, records.n_classes
    )


# ------------------------------------------------------------------------------------------------
# average precision / mAP50 on hand-made cases
# ------------------------------------------------------------------------------------------------


def test_perfect_prediction_scores_ultralytics_ceiling():
    assert average_precision(np.array([True]), 1) == pytest.approx(PERFECT_AP, abs=1e-12)
    overall, per_class = map50(_records([([0], [0.9], [True], [0])], n_classes=1))
    assert overall == pytest.approx(PERFECT_AP, abs=1e-12)
    assert per_class == {0: pytest.approx(PERFECT_AP, abs=1e-12)}


def test_false_positive_ranked_above_true_positive_halves_ap():
    # FP first: precision envelope is 0.5 over the whole recall range -> 0.01 * (99 * 0.5 + 0.25).
    assert average_precision(np.array([False, True]), 1) == pytest.approx(0.4975, abs=1e-12)
    # Same predictions ranked the other way round: perfect.
    assert average_precision(np.array([True, False]), 1) == pytest.approx(PERFECT_AP, abs=1e-12)
    records = _records([([0, 0], [0.9, 0.4], [False, True], [0])], n_classes=1)
    assert map50(records)[0] == pytest.approx(0.4975, abs=1e-12)


def test_half_recall_and_no_predictions():
    # One of two objects found, at the top: envelope 1 below recall 0.5 and 0 from recall 0.5 on
    # (np.interp lands on the (r_n, 0) sentinel at x == r_n), so 0.01 * (49 + 0.5).
    assert average_precision(np.array([True]), 2) == pytest.approx(0.495, abs=1e-12)
    assert average_precision(np.array([], dtype=bool), 3) == 0.0
    assert average_precision(np.array([True]), 0) == 0.0


def test_class_without_ground_truth_is_excluded_and_class_without_predictions_counts_zero():
    images = [
        ([0, 1], [0.9, 0.8], [True, False], [0, 2]),  # class 1: prediction but no GT; class 2: GT, no pred
    ]
    overall, per_class = map50(_records(images, n_classes=3))
    assert set(per_class) == {0, 2}
    assert per_class[2] == 0.0
    assert overall == pytest.approx(PERFECT_AP / 2, abs=1e-12)

    only_fp_class = map50(_records([([0, 1], [0.9, 0.8], [True, False], [0])], n_classes=2))
    assert only_fp_class == (pytest.approx(PERFECT_AP, abs=1e-12), {0: pytest.approx(PERFECT_AP, abs=1e-12)})


def test_no_ground_truth_at_all_gives_zero():
    assert map50(_records([([0], [0.5], [False], [])], n_classes=2)) == (0.0, {})


# ------------------------------------------------------------------------------------------------
# matcher
# ------------------------------------------------------------------------------------------------


GT_BOX = np.array([[0.0, 0.0, 10.0, 10.0]])


def test_duplicate_detections_only_one_true_positive():
    preds = np.array([[0, 0, 10, 10], [0.5, 0, 10, 10], [0, 0.5, 10, 10]], float)
    tp = match_image(preds, [0, 0, 0], [0.6, 0.9, 0.7], GT_BOX, [0])
    assert tp.tolist() == [False, True, False]  # the most confident one claims the object


def test_class_mismatch_is_false_positive():
    assert match_image(GT_BOX, [1], [0.9], GT_BOX, [0]).tolist() == [False]


@pytest.mark.parametrize(("height", "expected"), [(4.9, False), (5.0, False), (5.1, True), (10.0, True)])
def test_iou_threshold_edges(height, expected):
    # IoU = height / 10.  Exactly 0.5 does not match: Ultralytics divides by (union + 1e-7).
    pred = np.array([[0.0, 0.0, 10.0, height]])
    assert box_iou(pred, GT_BOX)[0, 0] == pytest.approx(height / 10, abs=1e-6)
    assert match_image(pred, [0], [0.9], GT_BOX, [0]).tolist() == [expected]


def test_greedy_matching_by_confidence():
    gts = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    preds = np.array(
        [
            [5, 0, 25, 10],  # most confident, IoU 0.2 with both GTs: no match at 0.5
            [1, 0, 11, 10],  # IoU 0.82 with GT0 -> claims it
            [0, 0, 10, 10],  # IoU 1.0 with GT0, but less confident and GT0 is taken
            [20, 0, 30, 9],  # IoU 0.9 with GT1
        ],
        float,
    )
    tp = match_image(preds, [0, 0, 0, 0], [0.95, 0.9, 0.5, 0.4], gts, [0, 0])
    assert tp.tolist() == [False, True, False, True]


def test_prediction_claims_its_best_unclaimed_ground_truth():
    gts = np.array([[0, 0, 10, 10], [3, 0, 13, 10]], float)
    # P1: IoU 0.6 with GT0 and 0.905 with GT1 -> must take GT1; P2: IoU 0.82 with GT0, 0.43 with GT1.
    preds = np.array([[2.5, 0, 12.5, 10], [-1, 0, 9, 10]], float)
    assert match_image(preds, [0, 0], [0.9, 0.8], gts, [0, 0]).tolist() == [True, True]


def test_matcher_empty_inputs():
    assert match_image(np.zeros((0, 4)), [], [], GT_BOX, [0]).shape == (0,)
    assert match_image(GT_BOX, [0], [0.3], np.zeros((0, 4)), []).tolist() == [False]


def test_matcher_and_ap_equal_ultralytics():
    """Parity (1e-12) with ultralytics' BaseValidator.match_predictions and ap_per_class."""
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    validator = pytest.importorskip("ultralytics.engine.validator")

    class _Iouv:
        iouv = torch.tensor([0.5])

    rng = np.random.default_rng(7)
    for _ in range(20):
        images, tps, confs, pcls, tcls = [], [], [], [], []
        for _ in range(15):
            gb, gc, pb, pc = _random_image(rng, n_classes=3)
            cf = rng.random(len(pc))  # unique scores: Ultralytics' tie order is unspecified
            order = np.argsort(-cf)
            iou = metrics.box_iou(
                torch.tensor(gb, dtype=torch.float32), torch.tensor(pb[order], dtype=torch.float32)
            )
            ours = match_image(pb, pc, cf, gb, gc)
            if len(gc) and len(pc):
                ref = validator.BaseValidator.match_predictions(
                    _Iouv(), torch.tensor(pc[order]), torch.tensor(gc), iou
                ).numpy()[:, 0]
                assert ours[order].tolist() == ref.tolist()
            images.append(ImageEval(pc, cf, ours, gc))
            tps.append(ours)
            confs.append(cf)
            pcls.append(pc)
            tcls.append(gc)
        overall, per_class = map50(PerImageRecords.from_images(images, 3))
        res = metrics.ap_per_class(
            np.concatenate(tps)[:, None], np.concatenate(confs), np.concatenate(pcls), np.concatenate(tcls)
        )
        ap50, classes = res[5][:, 0], res[6]
        assert overall == pytest.approx(float(ap50.mean()) if len(ap50) else 0.0, abs=1e-12)
        assert list(per_class) == classes.tolist()


def _random_image(rng: np.random.Generator, n_classes: int, size: float = 500.0):
    """GT boxes plus jittered, duplicated, mislabelled and spurious predictions (xyxy)."""
    m = int(rng.integers(0, 7))
    xy = rng.uniform(0, size, (m, 2))
    wh = rng.uniform(20, 120, (m, 2))
    gb = np.c_[xy, xy + wh]
    gc = rng.integers(0, n_classes, m)
    pb, pc = [], []
    for box, cls, s in zip(gb, gc, wh, strict=True):
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
            pb.append(box + rng.normal(0, 0.12, 4) * np.r_[s, s])
            pc.append(cls if rng.random() < 0.9 else int(rng.integers(0, n_classes)))
    for _ in range(int(rng.poisson(2))):
        p_xy, p_wh = rng.uniform(0, size, 2), rng.uniform(20, 120, 2)
        pb.append(np.r_[p_xy, p_xy + p_wh])
        pc.append(int(rng.integers(0, n_classes)))
    return gb, gc, np.array(pb, float).reshape(-1, 4), np.array(pc, int)


# ------------------------------------------------------------------------------------------------
# cross-check against an independent COCO implementation
# ------------------------------------------------------------------------------------------------


def _coco_eval_ap50(images, n_classes: int) -> tuple[float, np.ndarray]:
    """AP50 (area all, maxDets 100) and the [101, K] precision table from faster-coco-eval or pycocotools."""
    ev = coco_eval_at_50(images, n_classes, max_dets=100)
    return float(ev.stats[0]), ev.eval["precision"][0, :, :, 0, -1]


def _coco_rule_map(records: PerImageRecords) -> float:
    """COCO's accumulate() rule on our TP flags: envelope sampled at the first recall >= x, mean of 101."""
    order = np.argsort(-records.pred_conf, kind="mergesort")
    n_gt = records.gt_counts.sum(axis=0)
    aps = []
    for c in np.flatnonzero(n_gt > 0):
        tp = records.pred_tp[order][records.pred_class[order] == c].astype(float)
        tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
        rc, pr = tpc / n_gt[c], tpc / (tpc + fpc + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, AP_RECALL_POINTS, side="left")
        q = pr[np.minimum(idx, len(pr) - 1)] if len(pr) else np.zeros(101)
        aps.append(float(np.where(idx < len(pr), q, 0.0).mean()))
    return float(np.mean(aps))


def test_cross_check_against_coco_eval():
    rng = np.random.default_rng(2024)
    images = []
    for _ in range(50):
        gb, gc, pb, pc = _random_image(rng, n_classes=3)
        if len(gc) == 0:  # keep every image non-empty so both sides see the same image set
            gb, gc = np.array([[10.0, 10.0, 80.0, 90.0]]), np.array([0])
        images.append((pb, pc, rng.beta(3, 2, len(pc)), gb, gc))
    assert max(len(im[1]) for im in images) <= 100  # COCO keeps at most 100 detections per image
    records = PerImageRecords.from_images([evaluate_image(*im) for im in images], 3)
    ours, _ = map50(records)
    coco_ap50, _ = _coco_eval_ap50(images, 3)

    # 1) Matching parity: COCO's own AP rule applied to our TP flags reproduces COCOeval exactly.
    assert _coco_rule_map(records) == pytest.approx(coco_ap50, abs=1e-9)
    # 2) The AP rules differ: Ultralytics interpolates the envelope linearly between recall
    #    levels and integrates with the trapezoid rule (so it tops out at 0.995), COCO samples a
    #    step function at the first recall >= x and averages the 101 samples.  Analytically the
    #    gap is at most about one recall step plus one grid step (1/n_gt + 0.01 ~ 0.03 here);
    #    measured on this generator it is 0.00013 for this seed and at most 0.0052 over 40 seeds
    #    (0.0024 over 30 seeds of an easier generator).  0.01 covers that with margin; matching
    #    bugs are caught exactly by 1).
    assert abs(ours - coco_ap50) <= 0.01


# ------------------------------------------------------------------------------------------------
# vectorised weighted mAP50
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tie_decimals", [None, 2])
def test_batched_identity_resample_equals_map50(seed, tie_decimals):
    records = _random_records(seed, tie_decimals=tie_decimals)
    ones = np.ones((1, records.n_images), dtype=int)
    assert batched_map50(records, ones)[0] == pytest.approx(map50(records)[0], abs=1e-9)
    # Doubling every image leaves precision and recall unchanged.
    assert batched_map50(records, 2 * ones)[0] == pytest.approx(map50(records)[0], abs=1e-9)


def test_batched_subset_weights_equal_map50_on_the_subset():
    records = _random_records(3)
    rng = np.random.default_rng(0)
    weights = (rng.random((8, records.n_images)) < 0.4).astype(int)
    got = batched_map50(records, weights)
    for row, w in zip(got, weights, strict=True):
        keep = np.flatnonzero(w)
        new_index = np.full(records.n_images, -1)
        new_index[keep] = np.arange(keep.size)
        sel = w[records.pred_image] > 0
        subset = PerImageRecords(
            new_index[records.pred_image[sel]],
            records.pred_class[sel],
            records.pred_conf[sel],
            records.pred_tp[sel],
            records.gt_counts[keep],
            records.n_classes,
        )
        assert row == pytest.approx(map50(subset)[0], abs=1e-9)


def test_batched_bootstrap_weights_equal_literal_reference():
    records = _random_records(4, n_images=120, tie_decimals=2)
    rng = np.random.default_rng(1)
    draws = rng.integers(0, records.n_images, (12, records.n_images))
    weights = np.stack([np.bincount(d, minlength=records.n_images) for d in draws])
    got = batched_map50(records, weights)
    for row, w in zip(got, weights, strict=True):
        assert row == pytest.approx(_reference_weighted_map50(records, w), abs=1e-9)


def test_batched_rejects_bad_weights():
    records = _random_records(0, n_images=10)
    with pytest.raises(ValueError):
        batched_map50(records, np.ones((1, 9)))
    with pytest.raises(ValueError):
        batched_map50(records, -np.ones((1, 10)))


# ------------------------------------------------------------------------------------------------
# paired bootstrap and verdict
# ------------------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_per_seed():
    champion = _random_records(5)
    challenger = _shift(champion, 0.05, seed=1)
    a = paired_bootstrap(champion, challenger, n_resamples=300, seed=11)
    b = paired_bootstrap(champion, challenger, n_resamples=300, seed=11)
    c = paired_bootstrap(champion, challenger, n_resamples=300, seed=12)
    assert a == b
    assert (a.ci_low, a.ci_high, a.delta_mean) != (c.ci_low, c.ci_high, c.delta_mean)
    assert a.point_delta == c.point_delta == pytest.approx(map50(challenger)[0] - map50(champion)[0])
    assert (a.n_resamples, a.seed, a.confidence) == (300, 11, 0.95)
    assert a.ci_low <= a.delta_mean <= a.ci_high


def test_identical_models_give_exactly_zero():
    records = _random_records(6)
    res = paired_bootstrap(records, records, n_resamples=200, seed=3)
    assert (res.delta_mean, res.ci_low, res.ci_high, res.point_delta) == (0.0, 0.0, 0.0, 0.0)
    assert verdict(res, required_improvement=0.01) == "reject"


def test_clearly_better_challenger_is_promoted_and_worse_is_rejected():
    champion = _random_records(7, n_images=400)
    challenger = _shift(champion, 1.0, seed=2)  # every TP now outranks every FP
    assert map50(challenger)[0] - map50(champion)[0] > 0.05
    better = paired_bootstrap(champion, challenger, n_resamples=500, seed=0)
    assert better.ci_low > 0.03
    assert verdict(better, required_improvement=0.01) == "promote"
    worse = paired_bootstrap(challenger, champion, n_resamples=500, seed=0)
    assert worse.ci_high < 0
    assert verdict(worse, required_improvement=0.01) == "reject"


def test_bootstrap_requires_the_same_images():
    records = _random_records(8, n_images=50)
    fewer = _random_records(8, n_images=49)
    with pytest.raises(ValueError, match="images"):
        paired_bootstrap(records, fewer, n_resamples=10)
    other_gt = records.gt_counts.copy()
    other_gt[0, 0] += 1
    relabelled = PerImageRecords(
        records.pred_image,
        records.pred_class,
        records.pred_conf,
        records.pred_tp,
        other_gt,
        records.n_classes,
    )
    with pytest.raises(ValueError, match="ground truth"):
        paired_bootstrap(records, relabelled, n_resamples=10)
    with pytest.raises(ValueError):
        paired_bootstrap(records, records, n_resamples=0)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.02, 0.05, "promote"),
        (0.01, 0.05, "promote"),
        (-0.01, 0.05, "inconclusive"),
        (-0.03, 0.0099, "reject"),
    ],
)
def test_verdict(low, high, expected):
    res = BootstrapResult(
        delta_mean=(low + high) / 2,
        ci_low=low,
        ci_high=high,
        n_resamples=1,
        seed=0,
        point_delta=(low + high) / 2,
    )
    assert verdict(res, required_improvement=0.01) == expected


# ------------------------------------------------------------------------------------------------
# records container
# ------------------------------------------------------------------------------------------------


def test_records_json_round_trip():
    records = _random_records(9, n_images=30)
    payload = json.loads(json.dumps(records.to_dict()))
    back = PerImageRecords.from_dict(payload)
    for name in ("pred_image", "pred_class", "pred_conf", "pred_tp", "gt_counts"):
        assert np.array_equal(getattr(back, name), getattr(records, name))
    assert (back.n_classes, back.n_images) == (records.n_classes, records.n_images)
    assert map50(back) == map50(records)


def test_records_validation():
    with pytest.raises(ValueError, match="true positives"):
        _records([([0, 0], [0.9, 0.8], [True, True], [0])], n_classes=1)
    with pytest.raises(ValueError):
        PerImageRecords([0], [3], [0.5], [False], np.zeros((1, 2), int), 2)
    with pytest.raises(ValueError):
        PerImageRecords([1], [0], [0.5], [False], np.zeros((1, 2), int), 2)
    empty = PerImageRecords([], [], [], [], np.zeros((0, 2), int), 2)
    assert empty.n_images == 0 and map50(empty) == (0.0, {})
    assert PerImageRecords.from_dict(empty.to_dict()).n_classes == 2
    records = _records([([0], [0.9], [True], [0])], n_classes=1)
    with pytest.raises(ValueError):
        records.pred_conf[0] = 0.1  # read-only
