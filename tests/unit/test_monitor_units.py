"""The monitor's pure parts and readers, in milliseconds: drift scores, window cutting, verdicts, streaks, the log and
label readers on files written here (the model-quality scenarios are in tests/integration/test_monitor.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pfp_mlops.domain import monitor_policy as policy
from pfp_mlops.domain.drift import histograms, js_divergence, score_signals
from pfp_mlops.domain.prediction_log import BadLine, Box, LoggedPrediction, parse_record
from pfp_mlops.monitor_config import MonitorConfig, parse_duration, parse_window
from pfp_mlops.services.monitor import logs

SHA = "a" * 64


def line(**kw) -> dict:
    base = {"schema": 1, "request_id": "r" * 32, "image_index": 0, "ts": 100.0, "model": "m", "version": 2,
            "alias": "production", "image_sha256": SHA, "width": 96, "height": 64, "latency_ms": 3.0,
            "boxes": [{"class_id": 1, "class_name": "paper", "confidence": 0.9, "xyxy": [1, 2, 30, 40]}]}
    base.update(kw)
    return base


def test_js_divergence_bounds_and_symmetry():
    assert js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence([5, 0], [0, 5]) == pytest.approx(1.0)
    a, b = [3, 1, 0, 2], [0, 2, 5, 1]
    assert js_divergence(a, b) == pytest.approx(js_divergence(b, a))
    assert 0 < js_divergence(a, b) < 1
    with pytest.raises(ValueError):
        js_divergence([0, 0], [1, 1])


def test_histograms_and_scores_fire_only_on_the_shifted_signal():
    ims = [parse_record(line(request_id=f"{i:032x}")) for i in range(40)]
    big = [parse_record(line(request_id=f"{i:032x}", width=192, height=128)) for i in range(40)]
    h_ref, h_big = histograms(ims, ["rock", "paper"]), histograms(big, ["rock", "paper"])
    assert h_ref["empty_rate"] == [0, 40] and sum(h_ref["confidence"]) == 40
    assert h_ref["detections.paper"][1] == 40 and h_ref["detections.rock"][0] == 40
    scores = {s.name: s for s in score_signals(h_big, h_ref, threshold=0.1, min_samples=20)}
    assert scores["image_size"].alert and scores["image_size"].score == pytest.approx(1.0)
    assert not scores["confidence"].alert and scores["confidence"].score == pytest.approx(0.0, abs=1e-12)
    assert scores["box_area.paper"].alert  # same pixels on a 4× larger image
    assert scores["box_area.rock"].score is None  # no rock boxes at all: too few observations, no score


@pytest.mark.parametrize("n, ci, drop, prev, want", [
    (5, (-0.5, -0.4), 0.0, True, "inconclusive"),  # too few labels
    (30, (-0.5, -0.1), 0.0, True, "fail"),
    (30, (-0.5, -0.1), 0.2, True, "inconclusive"),  # straddles -0.2
    (30, (-0.05, 0.1), 0.0, True, "inconclusive"),
    (30, (0.0, 0.0), 0.0, True, "pass"),  # a tie is not a regression
    (30, (-0.05, 0.1), 0.1, True, "pass"),
    (30, None, 0.0, False, "pass"),  # nothing to compare with, nothing to roll back to
    (30, (math.nan, math.nan), 0.0, True, "inconclusive"),
])
def test_window_verdict(n, ci, drop, prev, want):
    verdict, why = policy.window_verdict(n, min_labelled=10, ci=ci, drop=drop, has_previous=prev)
    assert verdict == want and why


def test_streaks_need_consecutive_windows():
    f = i = 0
    seq = []
    for v in ("fail", "inconclusive", "fail", "fail", "pass", "inconclusive", "inconclusive"):
        f, i = policy.next_streaks(f, i, v)
        seq.append((f, i, policy.action(f, i, failure_limit=2, inconclusive_limit=2)))
    assert [a for *_, a in seq] == ["none", "none", "none", "rollback", "none", "none", "alert"]


def test_windows_time_aligned_and_count_full_only():
    ts = [3599.0, 3600.0, 3700.0, 7300.0, 7301.0]
    cuts = policy.time_windows(ts, 3600)
    assert [(c.window_id, c.indexes) for c in cuts] == [("t0", (0,)), ("t3600", (1, 2)), ("t7200", (3, 4))]
    counts = policy.count_windows(ts, 2, first_number=4)
    assert [(c.window_id, c.indexes) for c in counts] == [("n4", (0, 1)), ("n5", (2, 3))]  # the 5th waits


def test_parse_record_rejects_what_the_schema_forbids():
    assert parse_record(line()).boxes == (Box(1, 0.9, 1.0, 2.0, 30.0, 40.0),)
    for bad, why in ((line(schema=2), "schema"), (line(image_sha256="xyz"), "64 hex"),
                     (line(version=0), "version"), ({k: v for k, v in line().items() if k != "ts"}, "'ts'"),
                     (line(boxes=[{"class_id": 0, "confidence": 1, "xyxy": [1, 2]}]), "xyxy"), ([1], "object")):
        with pytest.raises(BadLine, match=why):
            parse_record(bad)


def test_read_log_orders_counts_and_tolerates(tmp_path):
    (tmp_path / "predictions-a.jsonl").write_text(
        json.dumps(line(ts=5.0, request_id="b" * 32)) + "\n" + "garbage\n" + json.dumps(line(model="other")) + "\n")
    (tmp_path / "predictions-b.jsonl").write_text(
        json.dumps(line(ts=1.0)) + "\n" + json.dumps(line(ts=1.0)) + "\n" + '{"schema": 1, "req')
    (tmp_path / "other.log").write_text("not read\n")
    r = logs.read_log(tmp_path, model="m")
    assert [p.ts for p in r.predictions] == [1.0, 5.0]
    assert (r.files, r.corrupt, r.partial, r.other_models, r.duplicates) == (2, 1, 1, 1, 1)
    assert r.problems == ["predictions-a.jsonl:2: not JSON"]
    assert len(logs.read_log(tmp_path, model="m", since_ts=2.0).predictions) == 1
    assert logs.read_log(tmp_path / "missing", model="m").predictions == []


def test_read_labels_from_files_and_csv(tmp_path):
    preds = [parse_record(line()), parse_record(line(request_id="c" * 32, image_sha256="b" * 64))]
    d = tmp_path / "labels"
    d.mkdir()
    (d / f"{SHA}.txt").write_text("1 0.5 0.5 0.2 0.4\n\n")
    (d / f"{'f' * 64}.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # never logged
    (tmp_path / "b.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # class out of range
    (d / "labels.csv").write_text("request_id,image_index,label_path\n" + "c" * 32 + ",0,../b.txt\n"
                                  + "z" * 32 + ",0,../b.txt\n,,\n")
    lab = logs.read_labels(d, d / "labels.csv", n_classes=3, predictions=preds)
    assert lab.by_sha == {SHA: [(1, 0.5, 0.5, 0.2, 0.4)]}
    assert (lab.bad, lab.unknown) == (2, 2)
    assert "class id 7 out of range" in lab.problems[0]


def test_config_and_parsing():
    assert parse_window("1h") == ("time", 3600.0) and parse_window("500") == ("count", 500.0)
    assert parse_duration("90s") == 90 and parse_duration("2d") == 172800
    for bad in ("0", "abc", "-5m"):
        with pytest.raises(ValueError):
            parse_window(bad)
    assert MonitorConfig(label_wait="0s").label_wait_s() == 0.0
    assert MonitorConfig(window=500).window == "500"  # `window: 500` in a YAML file
    with pytest.raises(ValueError):
        MonitorConfig(window="1 fortnight")


def test_previous_of_and_since():
    from pfp_mlops.domain.errors import UserError
    from pfp_mlops.services.monitor.run import parse_since, previous_of

    assert previous_of([1, 2], 2) == 1 and previous_of([1, 2], 1) is None and previous_of([1, 2, 1], 1) == 2
    assert previous_of([1, 3], 5) == 3  # never production (e.g. staging traffic): compare with the latest
    assert parse_since("2h", now=10_000.0) == 2800.0
    assert parse_since("2025-12-01T12:00:00Z") == 1_764_590_400.0
    with pytest.raises(UserError):
        parse_since("yesterday")


def test_logged_prediction_roundtrip():
    p = parse_record(line())
    assert isinstance(p, LoggedPrediction) and parse_record(p.to_dict()) == p
    assert np.isclose(p.boxes[0].x2, 30.0)
