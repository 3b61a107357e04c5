"""Benchmark: paired bootstrap of the mAP50 delta, 2,000 resamples over 5,000 images (target < 2 s).

Run as ``python benchmarks/bench_bootstrap.py``; ``benchmarks/run.py`` imports this file and calls :func:`run`,
which returns one row of the benchmark protocol: name, value, unit, baseline, ratio, target, ok, note.
The target is absolute (issue 7: under 2 s on this CPU); there is no baseline to take a ratio against.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    from pfp_mlops.domain.detection_metrics import PerImageRecords, paired_bootstrap
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pfp_mlops.domain.detection_metrics import PerImageRecords, paired_bootstrap

NAME = "bootstrap_2000x5000"
TARGET_S = 2.0
N_IMAGES = 5_000
N_CLASSES = 3
N_RESAMPLES = 2_000
REPEATS = 3


def synthetic_pair(
    n_images: int = N_IMAGES, n_classes: int = N_CLASSES, seed: int = 0
) -> tuple[PerImageRecords, PerImageRecords]:
    """Champion and challenger records on the same ground truth, ~5 predictions per image."""
    rng = np.random.default_rng(seed)
    gt = rng.poisson(1.2, (n_images, n_classes))  # ~3.6 objects per image

    def model(recall: float, fp_per_image: float) -> PerImageRecords:
        found = rng.binomial(gt, recall)
        tp_img, tp_cls = np.nonzero(found)
        reps = found[tp_img, tp_cls]
        tp_img, tp_cls = np.repeat(tp_img, reps), np.repeat(tp_cls, reps)
        fp_img = np.repeat(np.arange(n_images), rng.poisson(fp_per_image, n_images))
        fp_cls = rng.integers(0, n_classes, fp_img.size)
        img = np.concatenate([tp_img, fp_img])
        cls = np.concatenate([tp_cls, fp_cls])
        tp = np.r_[np.ones(tp_img.size, bool), np.zeros(fp_img.size, bool)]
        conf = np.where(tp, rng.beta(4, 2, img.size), rng.beta(2, 3, img.size))
        order = np.argsort(img, kind="stable")
        return PerImageRecords(img[order], cls[order], conf[order], tp[order], gt, n_classes)

    return model(0.80, 2.0), model(0.82, 2.0)


def run() -> list[dict]:
    """Median wall time and CPU time of paired_bootstrap(2,000 resamples, 5,000 images) against the 2 s target.

    The CPU time (this process, all threads) is reported too: on a shared machine the wall time mostly measures the
    neighbours (3 s wall for 1 s of CPU at a load of 5 on 2 cores).
    """
    champion, challenger = synthetic_pair()
    walls, cpus = [], []
    for _ in range(REPEATS):
        start, cpu = time.perf_counter(), time.process_time()
        paired_bootstrap(champion, challenger, n_resamples=N_RESAMPLES, seed=0)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (f"{N_IMAGES} images, {champion.n_predictions}/{challenger.n_predictions} predictions, {N_CLASSES} "
            f"classes, {N_RESAMPLES} paired resamples; median of {REPEATS}; load average {load:.1f} on "
            f"{os.cpu_count()} CPUs")
    target = f"< {TARGET_S:g} s"
    return [
        {"name": NAME, "value": round(wall, 4), "unit": "s", "baseline": None, "ratio": None, "target": target,
         "ok": wall < TARGET_S, "note": f"wall time (min {min(walls):.3f} s); {note}"},
        {"name": NAME + "_cpu", "value": round(cpu, 4), "unit": "s", "baseline": None, "ratio": None,
         "target": target, "ok": cpu < TARGET_S, "note": f"CPU time of the process; {note}"},
    ]


def main() -> int:
    """Print the result and exit non-zero when the target is missed."""
    rows = run()
    for r in rows:
        print(f"{r['name']}: {r['value']:.3f} s (target {r['target']}) {'PASS' if r['ok'] else 'FAIL'} - {r['note']}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
