"""Logging the weights as an MLflow pyfunc model, and the runtime checks that prevent dependency drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from pfp_mlops.adapters.mlflow_registry import translate_errors
from pfp_mlops.domain.errors import ConfigError, GateFailed

MODEL_CODE = Path(__file__).with_name("yolo_pyfunc.py")
PINNED = ("mlflow", "torch", "torchvision", "pandas", "numpy", "pillow")


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pinned_requirements() -> list[str]:
    """Exact versions of what the model needs to load, from this (training) environment."""
    reqs = []
    ultra = "ultralytics-opencv-headless" if _dist_version("ultralytics-opencv-headless") else "ultralytics"
    for name in (*PINNED, ultra):
        v = _dist_version(name)
        if v:
            reqs.append(f"{name}=={v.split('+')[0]}")
    return reqs


def log_pyfunc(weights: Path, *, run_id: str, imgsz: int, conf: float = 0.25) -> str:
    """Log the model under the given run; return its model URI (not yet registered)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "image")]))
    with translate_errors(), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"weights": str(weights)},
            pip_requirements=pinned_requirements(),
            signature=signature,
            model_config={"imgsz": imgsz, "conf": conf, "iou": 0.7},
        )
    return info.model_uri


CHECK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    t = time.time()
    import mlflow, pandas as pd
    m = mlflow.pyfunc.load_model(sys.argv[1])
    out = m.predict(pd.DataFrame({"image": [sys.argv[2]]}))
    cols = list(out.columns)
    need = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]
    assert cols == need, cols
    print(json.dumps({"ok": True, "rows": len(out), "seconds": round(time.time() - t, 2)}))
    """
)


def fresh_process_check(model_uri: str, sample_image: Path, *, timeout_s: float = 300) -> dict:
    """Load the logged model through `mlflow.pyfunc.load_model` in a new interpreter and predict one image."""
    import mlflow

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    env["MLFLOW_REGISTRY_URI"] = mlflow.get_registry_uri()
    try:
        proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, model_uri, str(sample_image)],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise GateFailed(f"runtime check: loading {model_uri} did not finish within {timeout_s:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise GateFailed(f"runtime check: the model does not load and predict in a fresh process: {last[:300]}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise GateFailed("runtime check: no result from the fresh process") from None


def read_production_runtime(spec: str | None) -> list[str]:
    """PFP_PRODUCTION_RUNTIME: specifiers separated by ';' or newlines, or a path to a requirements file."""
    if not spec:
        return []
    path = Path(spec)
    if "\n" not in spec and len(spec) < 4096 and (path.suffix in (".txt", ".lock", ".in") or path.is_file()):
        if not path.is_file():
            raise ConfigError(f"PFP_PRODUCTION_RUNTIME: file not found: {spec}")
        text = path.read_text(encoding="utf-8")
        parts = text.splitlines()
    else:
        parts = spec.replace("\n", ";").split(";")
    out = []
    for p in parts:
        p = p.split("#", 1)[0].strip()
        if p and not p.startswith("-"):
            out.append(p)
    return out


def runtime_mismatches(requirements: list[str], installed: dict[str, str]) -> list[str]:
    """Each declared requirement that this environment's versions do not satisfy, as a readable line."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    problems = []
    aliases = {"ultralytics-opencv-headless": "ultralytics", "python_version": "python"}
    for raw in requirements:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            raise ConfigError(f"PFP_PRODUCTION_RUNTIME: not a requirement specifier: {raw!r}") from None
        key = aliases.get(req.name.lower(), req.name.lower())
        have = installed.get(key)
        if have is None:
            continue
        try:
            ok = req.specifier.contains(Version(have), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(f"{key} {have} does not satisfy {req.specifier}")
    return problems
