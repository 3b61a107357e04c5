"""No-op `pfp run-all` against `dvc repro` no-op on the project's own dvc.yaml, in the same run.

Setup (untimed, ~3 min on 2 cores): two temporary checkouts of the project's DVC files with configs/default.yaml
shrunk to a test-sized pipeline (40 images at 64 px, 1 epoch, gates at 0), `pfp demo-data`, `dvc add data`; the
pipeline runs once through `dvc repro` in one (fills dvc.lock) and once through `pfp run-all` in the other (fills
pipeline_state.json), each on its own embedded MLflow store. Then both no-ops run alternately, each in a fresh
process, and the medians are compared. Target: pfp's no-op takes no longer than DVC's (ratio ≤ 1).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import BIN, REPO, alternate, measure, median, offline_env, repeats, row, spread

sys.path.insert(0, str(REPO / "scripts"))
from dvc_project import tiny_project  # noqa: E402 - scripts/ (shared with tests/topology/test_dvc_pipeline.py)

SLOW = True


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pfp-bench-noop-") as tmp:
        # Two identical projects: run-all and dvc repro write the same outputs (dataset/, runs/), so each would
        # invalidate the other's record. Each tool gets its own project, state and embedded MLflow store.
        pfp, dvc = str(BIN / "pfp"), str(BIN / "dvc")
        projects, envs = {}, {}
        for tool in ("pfp", "dvc"):
            projects[tool] = tiny_project(Path(tmp) / tool)
            envs[tool] = offline_env(projects[tool] / ".pfp", DVC_NO_ANALYTICS="1")
            measure([pfp, "demo-data", "--n", "40"], env=envs[tool], cwd=projects[tool])
            measure([dvc, "add", "-q", "data"], env=envs[tool], cwd=projects[tool])
        measure([dvc, "repro"], env=envs["dvc"], cwd=projects["dvc"], timeout=1200)
        first = measure([pfp, "run-all", "--json"], env=envs["pfp"], cwd=projects["pfp"], timeout=1200)
        setup_s = json.loads(first.proc.stdout)["duration_s"]

        def pfp_noop() -> float:
            m = measure([pfp, "run-all", "--json"], env=envs["pfp"], cwd=projects["pfp"])
            statuses = {s["status"] for s in json.loads(m.proc.stdout)["result"]["steps"]}
            if statuses != {"cached"}:
                raise RuntimeError(f"pfp run-all was not a no-op: {statuses}")
            return m.wall

        def dvc_noop() -> float:
            m = measure([dvc, "repro"], env=envs["dvc"], cwd=projects["dvc"])
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
