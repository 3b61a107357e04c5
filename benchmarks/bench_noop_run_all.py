"""No-op `pfp run-all` against `dvc repro` no-op on the project's own dvc.yaml, in the same run.

Setup (untimed, ~2 min on 2 cores): a temporary checkout of the project's DVC files with configs/default.yaml
shrunk to a test-sized pipeline (40 images at 64 px, 1 epoch, gates at 0), `pfp demo-data`, `dvc add data`, then
the pipeline once through `dvc repro` (fills dvc.lock) and once through `pfp run-all` (fills pipeline_state.json),
both on the project's embedded MLflow store. Then both no-ops run alternately, each in a fresh process, and the
medians are compared. Target: pfp's no-op takes no longer than DVC's (ratio ≤ 1).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from _common import BIN, REPO, alternate, measure, median, offline_env, repeats, row, spread

SLOW = True
TINY = {
    "demo": {"n_images": 40, "imgsz": 64},
    "train": {"epochs": 1, "imgsz": 64, "batch": 8, "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 64},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _project(root: Path) -> Path:
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    (root / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    (root / "configs").mkdir()
    default = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    (root / "configs" / "default.yaml").write_text(yaml.safe_dump(_merge(default, TINY)))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pfp-bench-noop-") as tmp:
        project = _project(Path(tmp))
        env = offline_env(project / ".pfp", DVC_NO_ANALYTICS="1")
        pfp, dvc = str(BIN / "pfp"), str(BIN / "dvc")
        measure([pfp, "demo-data", "--n", "40"], env=env, cwd=project)
        measure([dvc, "add", "-q", "data"], env=env, cwd=project)
        measure([dvc, "repro"], env=env, cwd=project, timeout=1200)
        first = measure([pfp, "run-all", "--json"], env=env, cwd=project, timeout=1200)
        setup_s = json.loads(first.proc.stdout)["duration_s"]

        def pfp_noop() -> float:
            m = measure([pfp, "run-all", "--json"], env=env, cwd=project)
            statuses = {s["status"] for s in json.loads(m.proc.stdout)["result"]["steps"]}
            if statuses != {"cached"}:
                raise RuntimeError(f"pfp run-all was not a no-op: {statuses}")
            return m.wall

        def dvc_noop() -> float:
            m = measure([dvc, "repro"], env=env, cwd=project)
            if "Running stage" in m.proc.stdout:
                raise RuntimeError(f"dvc repro was not a no-op: {m.proc.stdout[-500:]}")
            return m.wall

        samples = alternate({"pfp": pfp_noop, "dvc": dvc_noop}, n=repeats(7, 3))
    p, d = median(samples["pfp"]), median(samples["dvc"])
    return [
        row("noop_run_all_vs_dvc_repro", p, "s", baseline=d, target="ratio <= 1 (pfp no-op no slower than dvc's)",
            ok=p <= d, note=f"pfp {spread(samples['pfp'])}; dvc repro {spread(samples['dvc'])}; 5 stages, "
            f"40 images; first pfp run-all {setup_s:.0f} s"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
