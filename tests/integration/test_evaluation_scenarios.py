"""Decisions you can trust, on real tiny models and a real SQLite registry, through the `pfp` entry point.

One project, two real models trained once: `weak` (1 epoch, test mAP50 ≈ 0) and `strong` (20 epochs) at 96 px on 100
demo images (16 test images). In order:

* the evaluator: mAP50 recomputed from the stored per-image records equals the reported one; the numbers agree with
  Ultralytics `model.val()` and with faster-coco-eval on the same weights and split (tolerances stated in each test);
  the cache is reused only for the same fingerprint;
* scenarios whose right answer is known, with `decision: bootstrap`: better by less than the noise (inconclusive, exit
  11, nothing changes, while the point rule would promote), clearly better (promote), equal (the same weights
  registered twice: reject), worse (reject), one class regressing while the mean improves (reject naming the class);
* the interval is the same for the same seed, also recomputed from the evidence run's records;
* the default `decision: guarded` on a noisy gain (the strong weights plus small noise: ≥ 1 % better, interval
  including 0): inconclusive, exit 11, registry unchanged, ledger entry and alert; `decision: point` promotes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from tests.coco_reference import coco_eval_at_50
from tests.helpers import client, pfp, pfp_json, write_config
from tests.reliability import tiny_project, use_training

pytestmark = pytest.mark.slow
MODEL = "pfp-detector"
CLASSES = ["rock", "paper", "scissors"]
BOOTSTRAP = {"gates__validate__decision": "bootstrap"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    """v1 = weak (production), v2 = strong (staging); `weak_info.json` can register the weak weights again.

    The project is a copy of the session's trained one (tests/reliability.py tiny_trained: demo-data, split, and
    `pfp train` of these two configs, one study each)."""
    root = tiny_project(tmp_path_factory, "evaluation")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("PFP_HOME", str(root / ".pfp"))
    # Separate Optuna studies: the study is keyed by the split, and the weak one must not answer for the strong one.
    cfg = {"weak": write_config(root / "weak.yaml", train__epochs=1, **BOOTSTRAP,
                                train__search={"n_trials": 1, "study_name": "weak"}),
           "strong": write_config(root / "strong.yaml", **BOOTSTRAP,
                                  train__search={"n_trials": 1, "study_name": "strong"})}
    state: dict = {"root": root, "cfg": cfg}
    use_training(root, "weak")  # `pfp train --config weak.yaml`; weak_info.json (tiny_trained) points at weak.pt
    for args in (("register",), ("promote",), ("validate",)):
        code, out = pfp_json(*args, "--config", str(cfg["weak"]))
        assert code == 0, out
    assert alias("production") == 1
    state["strong_weights"] = use_training(root, "strong")["weights"]  # `pfp train --config strong.yaml`
    for args in (("register",), ("promote",)):
        r = pfp(*args, "--config", str(cfg["strong"]))
        assert r.exit_code == 0, r.output
    assert alias("staging") == 2
    yield state
    mp.undo()


def alias(name: str) -> int | None:
    try:
        return int(client().get_model_version_by_alias(MODEL, name).version)
    except Exception:
        return None


def tags(version: int) -> dict[str, str]:
    return client().get_model_version(MODEL, str(version)).tags


def context(cfg: Path):
    from pfp_mlops.services.context import Context
    from pfp_mlops.settings import load_config, load_settings

    # progress goes to a list: the `pfp` logger's stderr handler belongs to an earlier CliRunner invocation
    return Context(load_settings(), load_config(cfg), progress=[].append)


def last_ledger(action: str = "validate") -> dict:
    exp = client().get_experiment_by_name("pfp-lifecycle")
    runs = client().search_runs([exp.experiment_id], filter_string=f"tags.`pfp.action` = '{action}'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].data.tags


def evidence(run_id: str, tmp: Path) -> Path:
    from mlflow.artifacts import download_artifacts

    return Path(download_artifacts(run_id=run_id, artifact_path="validate", dst_path=str(tmp),
                                   tracking_uri=client()._tracking_client.tracking_uri))


def evaluations(project, *versions: int):
    from pfp_mlops.services.evaluation import evaluate_version_detailed
    from pfp_mlops.services.split import current_split

    ctx = context(project["cfg"]["strong"])
    manifest = current_split(ctx.cfg)
    return [evaluate_version_detailed(ctx, ctx.registry.version(MODEL, v), manifest) for v in versions], ctx


# --- the evaluator ------------------------------------------------------------------------------------------------


def test_records_reproduce_the_reported_map50(project):
    """mAP50 recomputed from the stored per-image records equals EvalResult.map50 (exactly) and the version's tag."""
    from pfp_mlops.domain.detection_metrics import map50
    from pfp_mlops.services.evaluation import EVAL_TAG_PREFIX

    (weak, strong), _ = evaluations(project, 1, 2)
    for v, ev in ((1, weak), (2, strong)):
        recomputed, per_class = map50(ev.records)
        assert recomputed == ev.result.map50
        assert {CLASSES[c]: ap for c, ap in per_class.items()} == ev.result.per_class_ap50
        tag = json.loads(tags(v)[EVAL_TAG_PREFIX + ev.result.protocol_fingerprint])
        assert tag["map50"] == ev.result.map50
        assert re.search(rf"/eval/[0-9a-f]{{16}}/{ev.result.protocol_fingerprint}\.json$", tag["records"])
        assert ev.records.n_images == ev.result.n_images == 16 and ev.images == sorted(ev.images)
    assert strong.result.map50 > weak.result.map50 + 0.05, "the 20-epoch model should be clearly better"


def _val(weights: str, data_yaml: str, out: Path):
    from ultralytics import YOLO

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return YOLO(weights).val(data=data_yaml, split="test", imgsz=96, batch=16, conf=0.001, iou=0.6, device="cpu",
                                 workers=0, plots=False, verbose=False, rect=False, half=False, project=str(out),
                                 name="val", exist_ok=True)


def test_agrees_with_ultralytics_val(project, monkeypatch, tmp_path):
    """Same weights and split as `model.val()`:

    1. pfp's arithmetic on val's own predictions reproduces val's mAP50, mAP50-95, precision, recall and per-class
       AP50 to 1e-9 (the matcher and AP are Ultralytics');
    2. with val's NMS switched to one label per box (what `predict`, and so production, does) val equals pfp's
       evaluator to 1e-9: the predictions are the same;
    3. stock val keeps up to 300 class labels per box (multi-label NMS), which adds low-confidence candidates of the
       other classes; that is the only difference, measured at 0.0115 mAP50 on this model: tolerance 0.03.
    """
    from ultralytics.models.yolo.detect.val import DetectionValidator
    from ultralytics.utils import nms

    from pfp_mlops.domain.detection_metrics import ImageDetections, score_images

    (strong,), _ = evaluations(project, 2)
    data_yaml = str(project["root"] / "dataset" / "data.yaml")
    seen: list[ImageDetections] = []
    original = DetectionValidator._process_batch

    def spy(self, preds, batch):
        seen.append(ImageDetections(*(t.cpu().numpy() for t in (preds["bboxes"], preds["cls"], preds["conf"],
                                                                 batch["bboxes"], batch["cls"]))))
        return original(self, preds, batch)

    monkeypatch.setattr(DetectionValidator, "_process_batch", spy)
    stock = _val(project["strong_weights"], data_yaml, tmp_path)
    mine = score_images(seen, 3)
    assert mine.map50 == pytest.approx(stock.box.map50, abs=1e-9)
    assert mine.map50_95 == pytest.approx(stock.box.map, abs=1e-9)
    assert (mine.precision, mine.recall) == pytest.approx((stock.box.mp, stock.box.mr), abs=1e-9)
    assert [mine.per_class_ap50[c] for c in range(3)] == pytest.approx(list(stock.box.ap50), abs=1e-9)
    assert abs(strong.result.map50 - stock.box.map50) <= 0.03

    nms_fn = nms.non_max_suppression

    def single_label(*args, **kwargs):
        kwargs["multi_label"] = False
        return nms_fn(*args, **kwargs)

    monkeypatch.setattr(nms, "non_max_suppression", single_label)
    single = _val(project["strong_weights"], data_yaml, tmp_path)
    r = strong.result
    assert single.box.map50 == pytest.approx(r.map50, abs=1e-9)
    assert single.box.map == pytest.approx(r.map50_95, abs=1e-9)
    assert (single.box.mp, single.box.mr) == pytest.approx((r.precision, r.recall), abs=1e-9)
    assert list(single.box.ap50) == pytest.approx([r.per_class_ap50[c] for c in CLASSES], abs=1e-9)


def _coco_ap50(images, n_classes: int) -> tuple[float, dict[int, float]]:
    ev = coco_eval_at_50([(d.pred_boxes, d.pred_classes, d.pred_confs, d.gt_boxes, d.gt_classes) for d in images],
                         n_classes, max_dets=300)  # the protocol keeps up to 300 detections per image
    precision = ev.eval["precision"][0, :, :, 0, -1]  # [101 recall points, K classes], area all, maxDets 300
    per_class = {c: float(precision[:, c].mean()) for c in range(n_classes) if (precision[:, c] > -1).any()}
    return float(ev.stats[1]), per_class


def test_agrees_with_faster_coco_eval(project):
    """faster-coco-eval (COCO's AP) on the evaluator's own predictions: within 0.02 of pfp's mAP50.

    The predictions are the evaluator's (pfp's scoring of them reproduces its mAP50 exactly). The matching is the
    same; the AP rules differ: COCO samples the precision envelope as a step function at 101 recall points, Ultralytics
    interpolates linearly between recall levels and integrates with the trapezoid rule. With 10 to 13 boxes per class
    a recall step is 0.08-0.1, so the rules may differ by a few hundredths per class. Measured on this model: COCO
    0.2288 vs pfp 0.2231 (gap 0.0057; per class 0.0004-0.0114).
    """
    from ultralytics import YOLO

    from pfp_mlops.adapters.yolo import MAX_DET, read_yolo_labels, split_images
    from pfp_mlops.domain.detection_metrics import ImageDetections, score_images

    (strong,), _ = evaluations(project, 2)
    images = split_images(str(project["root"] / "dataset" / "data.yaml"), "test")
    dets = []
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        results = list(YOLO(project["strong_weights"]).predict(
            [str(p) for p in images], imgsz=96, conf=0.001, iou=0.6, batch=16, device="cpu", max_det=MAX_DET,
            half=False, verbose=False, save=False))
    for path, res in zip(images, results, strict=True):
        h, w = res.orig_shape
        gb, gc = read_yolo_labels(path, width=w, height=h, n_classes=3)
        dets.append(ImageDetections(res.boxes.xyxy.numpy().astype(float), res.boxes.cls.numpy().astype(int),
                                    res.boxes.conf.numpy().astype(float), gb, gc))
    assert score_images(dets, 3).map50 == strong.result.map50  # the same predictions
    coco, coco_per_class = _coco_ap50(dets, 3)
    gap = abs(coco - strong.result.map50)
    assert gap <= 0.02, f"COCO {coco:.4f} vs pfp {strong.result.map50:.4f}"
    print(f"faster-coco-eval AP50 {coco:.5f}, pfp mAP50 {strong.result.map50:.5f}, gap {gap:.5f}; per class "
          + ", ".join(f"{CLASSES[c]} {coco_per_class[c]:.4f}/{strong.result.per_class_ap50[CLASSES[c]]:.4f}"
                      for c in coco_per_class))


def test_cached_results_are_reused_only_for_the_same_fingerprint(project, monkeypatch):
    """A fresh command reuses the tag and the records artifact; another protocol (conf 0.01) evaluates again."""
    from pfp_mlops.adapters import yolo
    from pfp_mlops.services.evaluation import evaluate_version, evaluate_version_detailed
    from pfp_mlops.services.split import current_split

    calls = []

    def no_evaluation(*args, **kwargs):
        calls.append(kwargs.get("conf"))
        raise RuntimeError("evaluated")

    monkeypatch.setattr(yolo, "evaluate_detailed", no_evaluation)
    ctx = context(project["cfg"]["strong"])
    manifest = current_split(ctx.cfg)
    info = ctx.registry.version(MODEL, 2)
    assert evaluate_version(ctx, info, manifest).n_images == 16
    assert evaluate_version_detailed(ctx, info, manifest).records.n_images == 16
    assert calls == []
    other = context(write_config(project["root"] / "conf01.yaml", evaluation__conf=0.01, **BOOTSTRAP))
    with pytest.raises(RuntimeError, match="evaluated"):
        evaluate_version(other, info, manifest)
    assert calls == [0.01]


# --- scenarios ----------------------------------------------------------------------------------------------------


def test_better_by_less_than_the_noise_is_inconclusive_and_changes_nothing(project):
    """The bar is set just under the measured gain (absolute a = Δ − 0.01): the point rule would promote, but on 16
    test images the interval is far wider than that 0.01 margin, so the bootstrap says inconclusive: exit 11,
    production and staging unchanged, a ledger entry with the evidence run."""
    (weak, strong), _ = evaluations(project, 1, 2)
    delta = strong.result.map50 - weak.result.map50
    a = delta - 0.01
    noise = write_config(project["root"] / "noise.yaml", **BOOTSTRAP, gates__validate__mode="absolute",
                         gates__validate__min_improvement=round(a, 6))
    code, out = pfp_json("validate", "--config", str(noise))
    assert code == 11, out
    assert out["error"]["type"] == "Inconclusive" and "nothing changed" in out["error"]["message"]
    d = out["result"]["decision"]
    boot = d["metrics"]["bootstrap"]
    assert out["result"]["action"] == "inconclusive" and d["verdict"] == "inconclusive"
    assert d["metrics"]["point_verdict"] == "promote", "the point rule would have promoted"
    assert boot["ci_low"] < a <= boot["ci_high"] and boot["ci_high"] - boot["ci_low"] > 0.02
    assert (alias("production"), alias("staging")) == (1, 2) and tags(2)["stage"] == "staging"
    entry = last_ledger()
    assert entry["pfp.outcome"] == "inconclusive"
    assert entry["pfp.comparison_run_id"] == d["metrics"]["comparison_run_id"]
    project["noise_bootstrap"] = boot


def test_clearly_better_challenger_is_promoted_with_its_evidence(project, tmp_path):
    """20 epochs vs 1 epoch: the whole interval clears +1 %; the evidence run holds the picture, the decision and both
    models' records, from which the same interval is recomputed (deterministic for the seed)."""
    from pfp_mlops.domain.detection_metrics import map50, paired_bootstrap
    from pfp_mlops.services.evaluation import parse_records_payload

    code, out = pfp_json("validate", "--config", str(project["cfg"]["strong"]))
    assert code == 0, out
    d = out["result"]["decision"]
    m = d["metrics"]
    assert out["result"]["action"] == "promoted" and d["verdict"] == "promote"
    assert m["bootstrap"]["ci_low"] >= m["required_delta"] and m["bootstrap"]["ci_low"] > 0
    assert alias("production") == 2 and tags(1)["stage"] == "archived"
    assert last_ledger()["pfp.comparison_run_id"] == m["comparison_run_id"]
    # Same records, same seed, same resamples: the same interval as in the inconclusive run.
    assert m["bootstrap"] == project["noise_bootstrap"]
    folder = evidence(m["comparison_run_id"], tmp_path)
    assert (folder / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    champ = parse_records_payload(json.loads((folder / "champion_records.json").read_text()))
    chall = parse_records_payload(json.loads((folder / "challenger_records.json").read_text()))
    assert map50(chall.records)[0] == out["result"]["challenger_eval"]["map50"]
    again = paired_bootstrap(champ.records, chall.records, n_resamples=2000, seed=0)
    assert (again.ci_low, again.ci_high) == (m["bootstrap"]["ci_low"], m["bootstrap"]["ci_high"])
    assert json.loads((folder / "decision.json").read_text())["decision"]["verdict"] == "promote"


def test_equal_challenger_is_rejected(project):
    """The same weights registered again: identical records, the interval is exactly [0, 0] → reject (exit 10)."""
    assert pfp_json("register", "--config", str(project["cfg"]["strong"]))[0] == 0
    assert pfp("promote", "--config", str(project["cfg"]["strong"])).exit_code == 0
    code, out = pfp_json("validate", "--config", str(project["cfg"]["strong"]))
    assert code == 10, out
    m = out["result"]["decision"]["metrics"]
    assert (m["bootstrap"]["ci_low"], m["bootstrap"]["ci_high"]) == (0.0, 0.0)
    assert m["point_verdict"] == "reject" and out["result"]["action"] == "rejected"
    assert "not better on any resample" in out["result"]["decision"]["reasons"][0]
    assert alias("production") == 2 and tags(3)["stage"] == "rejected"


def test_worse_challenger_is_rejected_and_the_table_shows_why(project):
    """The weak weights again against the strong champion: the whole interval is below 0 → reject; `pfp validate`
    prints per-class AP50 of both and ΔmAP50 with its interval."""
    code, out = pfp_json("register", "--training-info", str(project["root"] / "weak_info.json"),
                         "--config", str(project["cfg"]["weak"]))
    assert code == 0, out
    assert pfp("promote", "--config", str(project["cfg"]["weak"])).exit_code == 0
    r = pfp("validate", "--config", str(project["cfg"]["weak"]))
    assert r.exit_code == 10, r.output
    table = r.stdout
    for needle in ("AP50 on the test split", "rock", "paper", "scissors", "mAP50", "95%", "reject",
                   "production v2", "challenger v4"):
        assert needle in table, needle
    assert alias("production") == 2 and tags(4)["stage"] == "rejected"
    entry = last_ledger()
    assert entry["pfp.outcome"] == "rejected" and entry["pfp.to_version"] == "4"
    assert float(client().get_run(entry["pfp.comparison_run_id"]).data.metrics["delta_ci_high"]) < 0


def test_one_class_regressing_while_the_mean_improves_is_rejected_naming_it(project):
    """Built from the two real models' records: matching is per class, so taking one class's predictions from one
    model and the others' from the other gives exactly the records a model behaving that way would get.
    Champion = weak on two classes + strong on class k; challenger = strong on those two + weak on class k, with
    k the strong model's weakest class: the mean rises, class k falls to the weak model's AP50."""
    from pfp_mlops.domain.detection_metrics import PerImageRecords, map50, paired_bootstrap
    from pfp_mlops.domain.promotion_rule import judge

    (weak, strong), ctx = evaluations(project, 1, 2)
    k = min(range(3), key=lambda c: strong.result.per_class_ap50[CLASSES[c]])

    def mix(from_k, others) -> PerImageRecords:
        parts = [(r, r.pred_class == k if src else r.pred_class != k) for r, src in ((from_k, True), (others, False))]
        cat = {f: np.concatenate([getattr(r, f)[sel] for r, sel in parts])
               for f in ("pred_image", "pred_class", "pred_conf", "pred_tp")}
        return PerImageRecords(**cat, gt_counts=strong.records.gt_counts, n_classes=3)

    def result(records, like):
        overall, per_class = map50(records)
        return dataclasses.replace(like, map50=overall, per_class_ap50={CLASSES[c]: per_class[c] for c in per_class})

    champion_rec, challenger_rec = mix(strong.records, weak.records), mix(weak.records, strong.records)
    champion, challenger = result(champion_rec, strong.result), result(challenger_rec, strong.result)
    drop = champion.per_class_ap50[CLASSES[k]] - challenger.per_class_ap50[CLASSES[k]]
    assert challenger.map50 > champion.map50 * 1.01 and drop > 0.05, "preconditions of the construction"
    boot = paired_bootstrap(champion_rec, challenger_rec, n_resamples=2000, seed=0)
    g = ctx.cfg.gates.validate_
    for mode in ("point", "bootstrap"):
        lenient = judge(challenger, champion, boot, g.model_copy(update={"decision": mode}), min_absolute=0.0)
        strict = judge(challenger, champion, boot, g.model_copy(update={"decision": mode, "max_class_drop": 0.05}),
                       min_absolute=0.0)
        assert strict.verdict == "reject" and not strict.passed
        named = [r for r in strict.reasons if r.startswith("AP50[")]
        assert named == [f"AP50[{CLASSES[k]}] drops {champion.per_class_ap50[CLASSES[k]]:.4f} -> "
                         f"{challenger.per_class_ap50[CLASSES[k]]:.4f} (more than 0.0500)"]
        if mode == "point":
            assert lenient.passed, "without the class limit the mean improvement promotes"


# --- the default rule: decision: guarded --------------------------------------------------------------------------


def _noisy_twin(project, strong):
    """The strong weights with small Gaussian noise (2 % of each tensor's spread), the kind of difference another
    training seed makes, without training: the first noise seed whose test mAP50 beats production by the gate's
    +1 % while the paired interval still includes 0 (measured: seed 0, +8.3 %, interval [-0.03, +0.07])."""
    import torch

    from pfp_mlops.domain.detection_metrics import paired_bootstrap
    from pfp_mlops.services.evaluation import evaluate_weights_detailed
    from pfp_mlops.services.split import current_split

    ctx = context(project["cfg"]["strong"])
    manifest = current_split(ctx.cfg)
    for seed in range(20):
        ckpt = torch.load(project["strong_weights"], weights_only=False, map_location="cpu")
        net = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                if p.is_floating_point() and p.numel() > 1:
                    p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * p.float().std().to(p.dtype) * 0.02)
        out = project["root"] / f"twin{seed}.pt"
        torch.save(ckpt, out)
        ev = evaluate_weights_detailed(ctx, out, manifest)  # cached by content: register reuses it
        boot = paired_bootstrap(strong.records, ev.records, n_resamples=2000, seed=0)
        if ev.result.map50 >= strong.result.map50 * 1.01 and boot.ci_low <= 0:
            return out
    pytest.fail("no noise seed gave a +1 % challenger whose interval includes 0")


def test_guarded_default_does_not_promote_a_noisy_gain(project, monkeypatch):
    """Under the default `decision: guarded`, a challenger ≥ 1 % better whose interval includes 0 is inconclusive:
    exit 11, registry unchanged, ledger entry and alert written, the table and `pfp history` say how it was decided;
    the same registry under `decision: point` promotes it."""
    (strong,), _ = evaluations(project, 2)
    assert alias("production") == 2 and alias("staging") is None
    twin = _noisy_twin(project, strong)
    root = project["root"]
    info = json.loads((root / "runs" / "training_info.json").read_text()) | {"weights": str(twin)}  # strong's run
    (root / "twin_info.json").write_text(json.dumps(info))
    monkeypatch.setenv("COLUMNS", "300")  # rich tables: room for the decision rows on one line
    guarded = write_config(root / "guarded.yaml", train__search={"n_trials": 1, "study_name": "strong"})
    code, out = pfp_json("register", "--training-info", str(root / "twin_info.json"), "--config", str(guarded))
    assert code == 0, out
    v = out["result"]["version"]
    assert pfp("promote", "--config", str(guarded)).exit_code == 0 and alias("staging") == v

    r = pfp("validate", "--config", str(guarded))
    assert r.exit_code == 11, r.output
    for needle in ("inconclusive (decision: guarded, decided by the interval)", "point rule", "promote (bar",
                   "must clear 0: includes 0", "images needed (estimate)", "16 test images", "estimate:"):
        assert needle in r.stdout + r.stderr, needle
    code, out = pfp_json("validate", "--config", str(guarded))
    assert code == 11, out
    d = out["result"]["decision"]
    m = d["metrics"]
    assert (d["verdict"], m["decision_mode"], m["point_verdict"]) == ("inconclusive", "guarded", "promote")
    assert m["bootstrap"]["ci_low"] <= 0 < m["bootstrap"]["point_delta"] and m["n_test_images"] == 16
    assert m["images_needed_estimate"] > 16 and "about" in d["reasons"][-1]
    assert (alias("production"), alias("staging")) == (2, v)
    assert tags(v)["stage"] == "staging" and tags(2)["stage"] == "production"
    entry = last_ledger()
    assert entry["pfp.outcome"] == "inconclusive" and entry["pfp.to_version"] == str(v)
    assert (entry["pfp.decision_mode"], entry["pfp.point_verdict"], entry["pfp.verdict"]) == \
        ("guarded", "promote", "inconclusive")
    assert entry["pfp.comparison_run_id"] == m["comparison_run_id"]
    assert client().get_run(m["comparison_run_id"]).data.tags["pfp.decision_mode"] == "guarded"
    alert = json.loads((root / ".pfp" / "alerts.jsonl").read_text().splitlines()[-1])
    assert (alert["event"], alert["challenger"], alert["champion"], alert["needs_human"]) == \
        ("inconclusive", v, 2, True)
    assert alert["ci_low"] == m["bootstrap"]["ci_low"] and "needs a human" in alert["summary"]
    history = pfp("history", "--limit", "1", "--config", str(guarded))
    assert "inconclusive" in history.stdout and "guarded (point promote, interval [" in history.stdout
    # v2 and the twin come from one training run: each keeps its own records (not the last one registered)
    from pfp_mlops.domain.detection_metrics import map50

    (again, twin_ev), _ = evaluations(project, 2, v)
    assert map50(again.records)[0] == strong.result.map50 != map50(twin_ev.records)[0]
    print(f"guarded: v{v} vs v2: {json.dumps(d['reasons'], ensure_ascii=False)}; error: {r.stderr[-2000:]}")

    point = write_config(root / "point.yaml", gates__validate__decision="point",
                         train__search={"n_trials": 1, "study_name": "strong"})
    code, out = pfp_json("validate", "--config", str(point))
    assert code == 0 and out["result"]["action"] == "promoted", out
    assert alias("production") == v
