"""The fixed overhead of `pfp train`: a job so short that constant costs dominate (1 epoch, 32 demo images at
64 px, batch 8, CPU), `pfp train` (one trial) minus plain Ultralytics training the same arguments.

Two figures, both medians of alternating runs:
- in one process after an untimed warm-up of each (imports and torch start-up paid once, as bench_train.py):
  what pfp adds per training (study, parent and child runs, per-epoch logging, artifacts, training_info.json,
  the DVC data hash, git state). Target: <= 1.0 s.
- as fresh processes (`pfp train` vs `python -c <plain Ultralytics>`): the same plus pfp's extra imports.
Each also as CPU seconds (user + system, all threads): on shared cores the wall time measures the neighbours.

    PFP_BENCH_PROFILE=/tmp/p.html .venv/bin/python benchmarks/bench_train_overhead.py   # + a pyinstrument profile
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
from _common import BIN, REPO, alternate, in_process_project, measure, median, offline_env, repeats, row, spread  # noqa: E402

TARGET_S = 1.0
N_IMAGES, IMGSZ, EPOCHS, BATCH = 32, 64, 1, 8
CFG = {
    "demo": {"n_images": N_IMAGES, "imgsz": IMGSZ, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": EPOCHS, "imgsz": IMGSZ, "batch": BATCH, "plots": False, "workers": 0,
              "hyperparameters": {"mosaic": 0.0}, "search": {"n_trials": 1, "pruner": "none"}},
    "evaluation": {"imgsz": IMGSZ},
}
PLAIN = f"""
import contextlib, io, sys
from ultralytics import YOLO
m = YOLO("yolov8n.yaml")
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    m.train(data=sys.argv[1], epochs={EPOCHS}, imgsz={IMGSZ}, batch={BATCH}, workers=0, device="cpu", seed=0,
            deterministic=True, patience=100, project=sys.argv[2], name="train", exist_ok=True, plots=False,
            verbose=False, amp=False, val=True, save=True, mosaic=0.0)
"""


def _setup(root: Path) -> None:
    in_process_project(root, CFG)


def _config(root: Path, n: int) -> Path:
    import yaml

    c = dict(CFG, train=dict(CFG["train"], search=dict(CFG["train"]["search"], study_name=f"bench-{n}")))
    path = root / f"cfg-{n}.yaml"
    path.write_text(yaml.safe_dump(c))
    return path


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        root = Path(tmp)
        cwd = os.getcwd()
        try:
            _setup(root)
            from typer.testing import CliRunner

            from pfp_mlops.cli.app import app

            n = {"pfp": 0}
            cpu: dict[str, list[float]] = {"pfp": [], "ultralytics": [], "pfp_fresh": [], "ultralytics_fresh": []}
            data = str(root / "dataset" / "data.yaml")

            def pfp_train() -> float:
                n["pfp"] += 1  # a new study each time: the same name would resume the finished one
                path = _config(root, n["pfp"])
                t0, c0 = time.perf_counter(), time.process_time()
                r = CliRunner().invoke(app, ["train", "--config", str(path), "--json"])
                wall = time.perf_counter() - t0
                cpu["pfp"].append(time.process_time() - c0)
                assert r.exit_code == 0, r.output[-2000:]
                return wall

            def plain() -> float:
                from ultralytics import YOLO

                t0, c0 = time.perf_counter(), time.process_time()
                m = YOLO("yolov8n.yaml")
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    m.train(data=data, epochs=EPOCHS, imgsz=IMGSZ, batch=BATCH, workers=0, device="cpu", seed=0,
                            deterministic=True, patience=100, project=str(root / "plain"), name="train",
                            exist_ok=True, plots=False, verbose=False, amp=False, val=True, save=True, mosaic=0.0)
                cpu["ultralytics"].append(time.process_time() - c0)
                return time.perf_counter() - t0

            profile = os.environ.get("PFP_BENCH_PROFILE")
            if profile:
                from pyinstrument import Profiler

                pfp_train(), plain()
                with Profiler(interval=0.005) as p:
                    pfp_train()
                Path(profile).write_text(p.output_html())
                print(p.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
                if os.environ.get("PFP_BENCH_PROFILE_ONLY"):
                    return []
            inproc = alternate({"pfp": pfp_train, "ultralytics": plain}, n=repeats(4, 2), warmup=1)
            for k in ("pfp", "ultralytics"):
                del cpu[k][0]  # the warm-up

            env = offline_env(root / ".pfp-fresh", PFP_CONFIG="")
            env["PFP_HOME"] = str(root / ".pfp-fresh")
            env["PYTHONPATH"] = str(REPO / "src")  # this checkout's pfp, also when the venv's is another one

            def pfp_fresh() -> float:
                n["pfp"] += 1
                m = measure([str(BIN / "pfp"), "train", "--config", str(_config(root, n["pfp"])), "--json"],
                            env=env, cwd=root)
                cpu["pfp_fresh"].append(m.cpu)
                return m.wall

            def plain_fresh() -> float:
                m = measure([sys.executable, "-c", PLAIN, data, str(root / "plain-fresh")], env=env, cwd=root)
                cpu["ultralytics_fresh"].append(m.cpu)
                return m.wall

            fresh = alternate({"pfp": pfp_fresh, "ultralytics": plain_fresh}, n=repeats(2, 1), warmup=1)
            for k in ("pfp_fresh", "ultralytics_fresh"):
                del cpu[k][0]
        finally:
            os.chdir(cwd)
    p, u = median(inproc["pfp"]), median(inproc["ultralytics"])
    pf, uf = median(fresh["pfp"]), median(fresh["ultralytics"])
    pc, uc = median(cpu["pfp"]), median(cpu["ultralytics"])
    pfc, ufc = median(cpu["pfp_fresh"]), median(cpu["ultralytics_fresh"])
    job = f"yolov8n, {N_IMAGES} demo images, {IMGSZ} px, {EPOCHS} epoch, batch {BATCH}, {os.cpu_count()} CPU cores"
    return [
        row("train.fixed_overhead", p - u, "s", baseline=None, target=f"<= {TARGET_S} s", ok=p - u <= TARGET_S,
            note=f"{job}; in one process after warm-up: pfp {p:.2f} s ({spread(inproc['pfp'])}), "
                 f"ultralytics {u:.2f} s ({spread(inproc['ultralytics'])})"),
        row("train.fixed_overhead_cpu", pc - uc, "s CPU", target=f"<= {TARGET_S} s", ok=pc - uc <= TARGET_S,
            note=f"{job}; CPU seconds (all threads) in one process after warm-up, the figure to read on busy "
                 f"cores: pfp {pc:.2f} s, ultralytics {uc:.2f} s"),
        row("train.fixed_overhead_fresh_process_cpu", pfc - ufc, "s CPU", note=f"{job}; fresh processes, CPU "
            f"(user+sys): pfp {pfc:.2f} s, python+ultralytics {ufc:.2f} s"),
        row("train.fixed_overhead_fresh_process", pf - uf, "s", note=f"{job}; fresh processes (pfp's imports "
            f"included): pfp {pf:.2f} s ({spread(fresh['pfp'])}), python+ultralytics {uf:.2f} s "
            f"({spread(fresh['ultralytics'])})"),
    ]


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:40} {r['value']:8.2f} {r['unit']}  target {r['target'] or '-':>10}  ok {r['ok']}")
        print(f"  {r['note']}")
