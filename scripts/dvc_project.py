"""A copy of this repository's DVC pipeline in a fresh git repository, shrunk to a test-sized run.

`dvc.yaml`, `.dvcignore`, `.dvc/config` and `configs/default.yaml` (merged with the TINY overrides: 40 images at
64 px, one 1-epoch trial, gates at 0) — what `tests/topology/test_dvc_pipeline.py` and
`benchmarks/bench_noop_run_all.py` run `dvc repro` and `pfp run-all` in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "demo": {"n_images": 40, "imgsz": 64},
    "train": {"epochs": 1, "imgsz": 64, "batch": 8, "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 64},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def tiny_project(root: Path, overrides: dict | None = None) -> Path:
    """Create `root` as a checkout of the project's DVC files with configs/default.yaml shrunk; return it."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    (root / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    (root / "configs").mkdir()
    default = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    (root / "configs" / "default.yaml").write_text(yaml.safe_dump(merge(default, overrides or TINY)))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root
