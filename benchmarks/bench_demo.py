"""`pfp run-all --demo` (the default demo profile) against plain Ultralytics training of the same configuration.

pfp: one fresh process, `pfp run-all --demo --json` in an empty folder — generate the synthetic dataset, split,
train, register (TEST evaluation, runtime check in a fresh process), promote, validate.
Baseline: one fresh process running plain Ultralytics on the split pfp wrote: `YOLO(model yaml).train(...)` with
the arguments pfp's trainer passes for the demo profile (same epochs, size, batch, seed, workers, plots off),
then `val` of best.pt on the TEST split with the evaluation protocol. This is the floor for "train a detector and
know its test score"; everything beyond it is the pipeline's overhead.

Targets: wall ≤ 5 min, TEST mAP50 ≥ 0.9, overhead (pfp wall / baseline wall − 1) ≤ 20 %.
Minutes-long: skipped by `run.py --quick`. One pair per run (the pair takes ~5 min on 2 cores).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from _common import BIN, REPO, measure, offline_env, row, scratch

SLOW = True

BASELINE = r'''
import json, sys, time
t0 = time.perf_counter()
from ultralytics import YOLO
a = json.loads(sys.argv[1])
model = YOLO(a.pop("model"))
ev = a.pop("evaluation")
model.train(**a)
t_train = time.perf_counter() - t0
best = YOLO(str(model.trainer.best))
m = best.val(data=a["data"], split="test", imgsz=ev["imgsz"], batch=ev["batch"], conf=ev["conf"], iou=ev["iou"],
             device=a["device"], workers=0, plots=False, verbose=False, rect=False, half=False,
             project=a["project"], name="eval", exist_ok=True)
print(json.dumps({"map50": float(m.box.map50), "train_s": t_train, "total_s": time.perf_counter() - t0}))
'''


def baseline_args(tmp: Path) -> dict:
    """The Ultralytics arguments of pfp's trainer for the demo profile (adapters/yolo.train)."""
    sys.path.insert(0, str(REPO / "src"))
    from pfp_mlops.settings import load_pipeline_config, load_settings

    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        cfg = load_pipeline_config(load_settings(), profile="demo")
    finally:
        os.chdir(cwd)
    t, e = cfg.train, cfg.evaluation
    args = dict(model=t.model, data=str(tmp / "dataset" / "data.yaml"), epochs=t.epochs, imgsz=t.imgsz,
                batch=t.batch, workers=t.workers, device="cpu", seed=t.seed, deterministic=True, patience=t.patience,
                project=str(tmp / "baseline-runs"), name="train", exist_ok=True, plots=False, verbose=False,
                amp=False, val=True, save=True, **t.hyperparameters)
    args["evaluation"] = {"imgsz": e.imgsz, "batch": e.batch, "conf": e.conf, "iou": e.iou}
    return args


def run() -> list[dict]:
    with scratch("demo") as tmp:
        return _run(tmp)


def _run(tmp: Path) -> list[dict]:
    env = offline_env(tmp / ".pfp", PFP_LOG_LEVEL="INFO")
    m = measure([str(BIN / "pfp"), "run-all", "--demo", "--json"], env=env, cwd=tmp, check=False, timeout=1500)
    if m.proc.returncode != 0:
        raise RuntimeError(f"pfp run-all --demo exited {m.proc.returncode}: {m.proc.stderr.strip()[-500:]}")
    result = json.loads(m.proc.stdout)["result"]
    steps = {s.get("step") or s.get("name"): s for s in result.get("steps", [])}
    found = re.search(r"test mAP50 ([0-9.]+)", steps.get("register", {}).get("summary", ""))
    pfp_map50 = float(found.group(1)) if found else float("nan")
    durations = ", ".join(f"{n} {s.get('duration_s', 0):.0f} s" for n, s in steps.items())

    script = tmp / "baseline.py"
    script.write_text(BASELINE)
    b = measure([sys.executable, str(script), json.dumps(baseline_args(tmp))], env=env, cwd=tmp, timeout=1500)
    base = json.loads(b.proc.stdout.strip().splitlines()[-1])
    overhead = m.wall / b.wall - 1
    overhead_cpu = m.cpu / b.cpu - 1
    train_s = steps.get("train", {}).get("duration_s")
    return [
        row("demo_run_all_wall", m.wall, "s", baseline=b.wall, target="≤ 300 s", ok=m.wall <= 300,
            note=f"{durations}; cpu {m.cpu:.0f} s; baseline = plain Ultralytics train + test val, cpu {b.cpu:.0f} s"),
        row("demo_test_map50", pfp_map50, "mAP50", baseline=base["map50"], target="≥ 0.9", ok=pfp_map50 >= 0.9,
            note="pfp: register's TEST evaluation; baseline: val of its best.pt on the same TEST split"),
        row("demo_pipeline_overhead", overhead * 100, "%", target="≤ 20 %", ok=overhead <= 0.20,
            note=f"pfp wall / baseline wall − 1; pfp train step {train_s} s vs baseline train "
                 f"{base['train_s']:.0f} s (process incl. imports)"),
        row("demo_pipeline_overhead_cpu", overhead_cpu * 100, "%", target="≤ 20 %", ok=overhead_cpu <= 0.20,
            note=f"pfp CPU / baseline CPU − 1 (user+system, children included: {m.cpu:.0f} s vs {b.cpu:.0f} s); "
                 f"the figure to read when the load changed between the two halves"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    for r in run():
        print(r)
