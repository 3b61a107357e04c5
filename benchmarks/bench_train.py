"""`pfp train` (one trial, fixed params) against plain Ultralytics training of the same configuration.

Both run in this one process, after an untimed warm-up of each (so imports, torch start-up and the first-call
costs are paid once for both), in alternating order, on the same split with the same Ultralytics arguments
(`plots=False` on both sides: pfp's final plots would otherwise be the only difference). What the ratio measures is
pfp's own cost per training: the Optuna study (SQLite), the MLflow parent and child runs, per-epoch metric
logging, the pruning/progress callback, artifacts (weights twice, results.csv) and training_info.json.
`pfp`'s extra imports (mlflow ~1.9 s, optuna ~0.4 s on this CPU) are a fixed start-up cost outside the ratio.
Target: ratio ≤ 1.03.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, in_process_project, median, repeats, row, spread  # noqa: E402

SLOW = True
TARGET = 1.03
# The CPU defaults; the GPU check sets PFP_BENCH_TRAIN_DEVICE=0 and larger sizes (README "Training …").
DEVICE = os.environ.get("PFP_BENCH_TRAIN_DEVICE", "cpu")
N_IMAGES = int(os.environ.get("PFP_BENCH_TRAIN_IMAGES", "200"))
IMGSZ = int(os.environ.get("PFP_BENCH_TRAIN_IMGSZ", "160"))
EPOCHS = int(os.environ.get("PFP_BENCH_TRAIN_EPOCHS", "8"))
BATCH = int(os.environ.get("PFP_BENCH_TRAIN_BATCH", "16"))
WORKERS = int(os.environ.get("PFP_BENCH_TRAIN_WORKERS", "0"))


def _setup(root: Path) -> tuple[Path, dict[str, Any]]:
    cfg = {
        "demo": {"n_images": N_IMAGES, "imgsz": IMGSZ, "seed": 0},
        "train": {"epochs": EPOCHS, "imgsz": IMGSZ, "batch": BATCH, "plots": False, "workers": WORKERS,
                  "hyperparameters": {"mosaic": 0.0}, "search": {"n_trials": 1}},
        "evaluation": {"imgsz": IMGSZ},
        "split": {"allow_missing_classes": True},
    }
    return in_process_project(root, cfg, PFP_DEVICE=DEVICE), cfg


def run() -> list[dict[str, Any]]:
    import yaml

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        cwd = os.getcwd()
        try:
            _, cfg = _setup(root)
            from typer.testing import CliRunner

            from pfp_mlops.cli.app import app

            n = {"pfp": 0}

            def pfp_train() -> float:
                n["pfp"] += 1  # a new study each time: the same name would resume the finished one and train nothing
                c = dict(cfg, train=dict(cfg["train"], search={"n_trials": 1, "study_name": f"bench-{n['pfp']}"}))
                path = root / f"cfg-{n['pfp']}.yaml"
                path.write_text(yaml.safe_dump(c))
                t0 = time.perf_counter()
                r = CliRunner().invoke(app, ["train", "--config", str(path), "--json"])
                wall = time.perf_counter() - t0
                assert r.exit_code == 0, r.output[-2000:]
                return wall

            def plain_ultralytics() -> float:
                from ultralytics import YOLO

                t0 = time.perf_counter()
                model = YOLO("yolov8n.yaml")
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    model.train(data=str(root / "dataset" / "data.yaml"), epochs=EPOCHS, imgsz=IMGSZ, batch=BATCH,
                                workers=WORKERS, device=DEVICE, seed=0, deterministic=True, patience=100,
                                project=str(root / "plain"), name="train", exist_ok=True, plots=False, verbose=False,
                                amp=DEVICE != "cpu", val=True, save=True, mosaic=0.0)
                return time.perf_counter() - t0

            samples = alternate({"pfp": pfp_train, "ultralytics": plain_ultralytics}, n=repeats(2, 2), warmup=1)
        finally:
            os.chdir(cwd)
    p, u = median(samples["pfp"]), median(samples["ultralytics"])
    ratio = p / u
    cpu = f"{os.cpu_count()} CPU cores"
    if DEVICE != "cpu":
        import torch

        cpu = f"device {DEVICE} ({torch.cuda.get_device_name(int(DEVICE.split(',')[0]))}), {cpu}"
    name = "train.one_trial_vs_ultralytics" + ("" if DEVICE == "cpu" else "_gpu")
    return [row(name, p, "s", baseline=u, ratio=ratio, target=f"ratio <= {TARGET}",
                ok=ratio <= TARGET,
                note=f"yolov8n, {N_IMAGES} demo images, {IMGSZ} px, {EPOCHS} epochs, batch {BATCH}, {cpu}; "
                     f"pfp {spread(samples['pfp'])}, ultralytics {spread(samples['ultralytics'])}")]


if __name__ == "__main__":
    rows = run()
    print(f"{'name':36} {'value':>9} {'baseline':>9} {'ratio':>7} {'target':>14} ok")
    for r in rows:
        print(f"{r['name']:36} {r['value']:9.2f} {r['baseline']:9.2f} {r['ratio']:7.3f} {r['target']:>14} {r['ok']}")
        print(f"  {r['note']}")
