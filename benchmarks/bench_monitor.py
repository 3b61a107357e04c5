"""`pfp monitor`: time per window against the evaluation floor.

Floor: the evaluation protocol `validate` applies (`yolo.evaluate_detailed`: load the weights, predict, match, score)
on the same 1,000 images once. Two windows, each computed by `run_monitor` in one process (reading the whole log,
the labels, MLflow writes, the series picture and loading the models included; the drift reference is cached
beforehand, as it is after a version's first window):

* label-free: 10,000 logged predictions, no labels — the drift signals only;
* labelled: 1,000 logged predictions, all labelled — signals, the serving version scored from its logged boxes, the
  previous production shadow-scored through its pyfunc on the stored images, the paired bootstrap (1,000 resamples).

Target (issue #15): each ≤ 2.2× the floor, "for both versions together" — the labelled window scores both versions.
Alternating rounds, medians.

Setup (untimed): 1,000 synthetic images at 96 px, a 1-epoch training, v1 and v2 registered from it, production v2
after v1; the log lines are v2's real pyfunc predictions on the images, stored as `pfp serve` stores them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from _common import REPO, alternate, measure, median, pfp_project, repeats, row, scratch, spread

SLOW = True
TARGET = 2.2
N_LABELLED, N_LOGGED = 1000, 10_000
CONFIG = {
    "demo": {"n_images": N_LABELLED, "imgsz": 96, "seed": 0},
    "train": {"epochs": 1, "imgsz": 96, "batch": 16, "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0},
              "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 96, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
    "monitor": {"label_wait": "0s", "min_labelled": 30, "bootstrap_resamples": 1000},
}


def run() -> list[dict]:
    with scratch("monitor") as tmp:
        return _run(tmp)


def _run(tmp: Path) -> list[dict]:
    cfg, env, pfp = pfp_project(tmp, CONFIG, (["demo-data"], ["split"], ["train"], ["register"], ["promote"],
                                              ["validate"]), timeout=1200)
    shutil.copy(tmp / "runs" / "training_info.json", tmp / "info.json")
    measure([pfp, "register", "--training-info", str(tmp / "info.json"), "--config", str(cfg)], env=env, cwd=tmp)
    measure([pfp, "rollback", "--to-version", "2", "--config", str(cfg)], env=env, cwd=tmp)
    os.environ.update(env)
    os.chdir(tmp)
    sys.path.insert(0, str(REPO / "src"))
    from pfp_mlops.runtime_env import apply_offline_env

    apply_offline_env(tmp / ".pfp")
    from pfp_mlops.adapters import yolo
    from pfp_mlops.adapters.pyfunc_predict import PyfuncPredictor
    from pfp_mlops.services.context import Context
    from pfp_mlops.services.evaluation import weights_for_version
    from pfp_mlops.services.monitor.run import run_monitor
    from pfp_mlops.settings import load_config, load_settings

    def context(**monitor: object) -> Context:
        raw = json.loads(json.dumps(CONFIG))
        raw["monitor"].update(monitor)
        path = tmp / "cfg-run.yaml"
        path.write_text(json.dumps(raw))
        return Context(load_settings(), load_config(path), progress=lambda _m: None)

    base = context()
    base.registry  # noqa: B018 - MLflow URIs for load_model
    images = sorted((tmp / "data" / "images").rglob("*.png"))[:N_LABELLED]
    data_yaml = tmp / "bench-data.yaml"
    (tmp / "bench-test.txt").write_text("\n".join(str(p) for p in images) + "\n")
    data_yaml.write_text(json.dumps({"path": str(tmp), "test": "bench-test.txt", "names": dict(enumerate(
        base.cfg.data.classes))}))
    preds = PyfuncPredictor("models:/pfp-detector/2").predict(images)

    def write_log(folder: Path, n: int, *, labels: bool) -> None:
        (folder / "labels").mkdir(parents=True)
        t0 = 1_764_590_400.0
        with (folder / "predictions-w1.jsonl").open("w") as f:
            for i in range(n):
                k = i % len(images)
                data = images[k].read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                w, h, boxes = preds[k]
                if i < len(images):
                    dst = folder / "images" / sha[:2] / f"{sha}.png"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(data)
                    if labels:
                        label = images[k].parent.parent / "labels" / f"{images[k].stem}.txt"
                        (folder / "labels" / f"{sha}.txt").write_text(label.read_text())
                f.write(json.dumps({"schema": 1, "request_id": uuid.uuid4().hex, "image_index": 0, "ts": t0 + i * 0.1,
                                    "model": "pfp-detector", "version": 2, "alias": "production",
                                    "image_sha256": sha, "width": w, "height": h, "latency_ms": 1.0,
                                    "boxes": [{"class_id": b.class_id, "confidence": b.confidence,
                                               "xyxy": [b.x1, b.y1, b.x2, b.y2]} for b in boxes]}) + "\n")

    write_log(tmp / "log-free", N_LOGGED, labels=False)
    write_log(tmp / "log-labelled", N_LABELLED, labels=True)
    weights = weights_for_version(base, base.registry.version("pfp-detector", 2))
    e = base.cfg.evaluation
    counter = iter(range(10_000))

    def floor() -> float:
        t = time.perf_counter()
        yolo.evaluate_detailed(weights, data_yaml=str(data_yaml), split="test", split_fingerprint="bench",
                               class_names=list(base.cfg.data.classes), imgsz=e.imgsz, batch=e.batch, conf=e.conf,
                               iou=e.iou, device="cpu")
        return time.perf_counter() - t

    def window(log: str, size: int, min_labelled: int) -> float:
        ctx = context(experiment=f"bench-{next(counter)}", window=str(size), min_labelled=min_labelled)
        (tmp / ".pfp" / "monitor" / "state.json").unlink(missing_ok=True)
        t = time.perf_counter()
        r = run_monitor(ctx, log_dir=tmp / log)
        took = time.perf_counter() - t
        assert len(r.windows) == 1, r.windows
        return took

    window("log-labelled", N_LABELLED, 30)  # caches v2's drift reference (once per version, by design)
    samples = alternate({"floor": floor,
                         "free": lambda: window("log-free", N_LOGGED, N_LOGGED + 1),
                         "labelled": lambda: window("log-labelled", N_LABELLED, 30)}, n=repeats(3, 1), warmup=0)
    f = median(samples["floor"])
    rows = [row("monitor: evaluation floor (1,000 images, validate's protocol)", f, "s", note=spread(samples["floor"]))]
    for key, label in (("free", f"label-free window, {N_LOGGED:,} logged predictions"),
                       ("labelled", f"labelled window, {N_LABELLED:,} images, previous version shadow-scored")):
        v = median(samples[key])
        rows.append(row(f"monitor: {label}", v, "s", baseline=f, target=f"≤ {TARGET}× floor", ok=v <= TARGET * f,
                        note=spread(samples[key])))
    return rows
