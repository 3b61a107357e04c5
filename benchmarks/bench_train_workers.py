"""`pfp train --worker`: trials per minute with 1 and 2 workers on one study, and what coordination costs.

The production topology from scripts/local_stack.py (PostgreSQL for MLflow and the Optuna study, an MLflow server
on loopback); each worker a fresh `pfp train --worker --trials 4` process on small 2-epoch trials (64 demo images
at 96 px: seconds each, far shorter than real ones, so the coordination share is an upper bound). On a 2-core
machine two workers are not faster (they share the cores): the point is that coordination stays small.
Coordination per trial = the worker's time in Optuna storage calls (ask, tell, attributes, reaping, reading the
study; the heartbeat thread overlaps training and is not counted) / its trials, reported by the worker itself
(`timings` in its --json result). Target: <= 2 % of the trial's training time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, REPO, measure, offline_env, row  # noqa: E402

SLOW = True
TARGET_PCT = 2.0
N_TRIALS = 4
CFG = {
    "demo": {"n_images": 64, "imgsz": 96, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": 2, "imgsz": 96, "batch": 8, "plots": False, "hyperparameters": {"mosaic": 0.0},
              "search": {"n_trials": N_TRIALS, "pruner": "none", "parallel": {"poll_s": 0.5},
                         "space": {"lr0": {"type": "float", "low": 0.001, "high": 0.02, "log": True}}}},
    "evaluation": {"imgsz": 96},
}


def _database(stack: Any) -> str:
    import psycopg2

    db = f"optuna_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(f"postgresql://mlflow@127.0.0.1:{stack.pg_port}/postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    return f"postgresql+psycopg2://mlflow@127.0.0.1:{stack.pg_port}/{db}"


def run() -> list[dict[str, Any]]:
    import yaml

    sys.path.insert(0, str(REPO / "scripts"))
    from local_stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp, LocalStack(root=Path(tmp) / "stack") as stack:
        root = Path(tmp)
        env = offline_env(root / ".pfp", **stack.client_env(), PYTHONPATH=str(REPO / "src"))
        cfg_path = root / "cfg.yaml"
        cfg_path.write_text(yaml.safe_dump(CFG))
        for cmd in ("demo-data", "split"):
            measure([str(BIN / "pfp"), cmd, "--config", str(cfg_path)], env=env, cwd=root)

        def study(n_workers: int) -> dict[str, Any]:
            name = f"bench-{n_workers}w-{uuid.uuid4().hex[:4]}"
            c = json.loads(json.dumps(CFG))
            c["train"]["search"]["study_name"] = name
            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump(c))
            storage = _database(stack)
            results: list[Any] = [None] * n_workers

            def one(i: int) -> None:
                results[i] = measure([str(BIN / "pfp"), "train", "--worker", "--config", str(path), "--json"],
                                     env={**env, "PFP_OPTUNA_STORAGE": storage, "PFP_WORKER_ID": f"w{i}"},
                                     cwd=root, timeout=1200)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(n_workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            outs = [json.loads(m.proc.stdout)["result"] for m in results]
            trials = sum(len(o["trials_run"]) for o in outs)
            wall = max(m.wall for m in results)
            storage_s = sum(o["timings"]["storage_s"] for o in outs)
            train_s = sum(o["timings"]["train_s"] for o in outs)
            return {"workers": n_workers, "trials": trials, "wall": wall, "per_min": trials / wall * 60,
                    "cpu_pct": 100 * sum(m.cpu for m in results) / wall / (os.cpu_count() or 1),
                    "coord_per_trial": storage_s / trials, "train_per_trial": train_s / trials,
                    "wait_s": sum(o["timings"]["wait_s"] for o in outs),
                    "calls_per_trial": sum(o["timings"]["storage_calls"] for o in outs) / trials}

        one_w, two_w = study(1), study(2)
    rows = []
    for r in (one_w, two_w):
        pct = 100 * r["coord_per_trial"] / r["train_per_trial"]
        rows.append(row(f"train.workers_{r['workers']}.trials_per_min", r["per_min"], "trials/min",
                        note=f"{r['trials']} trials in {r['wall']:.1f} s, CPU {r['cpu_pct']:.0f} % of "
                             f"{os.cpu_count()} cores; training {r['train_per_trial']:.2f} s/trial, waiting "
                             f"{r['wait_s']:.1f} s in all"))
        rows.append(row(f"train.workers_{r['workers']}.coordination_per_trial", r["coord_per_trial"], "s",
                        ratio=pct / 100, target=f"<= {TARGET_PCT:g} % of the trial", ok=pct <= TARGET_PCT,
                        note=f"{pct:.2f} % of {r['train_per_trial']:.2f} s training per trial; "
                             f"{r['calls_per_trial']:.0f} Optuna storage calls per trial (PostgreSQL, loopback)"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:44} {r['value']:9.3f} {r['unit']:10} {r['target'] or '':>24} {r['ok']}")
        print(f"  {r['note']}")
