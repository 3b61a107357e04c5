"""Logging the weights as an MLflow pyfunc model, and the runtime checks that prevent dependency drift."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from pfp_mlops.adapters.mlflow_registry import translate_errors
from pfp_mlops.domain.errors import ConfigError, GateFailed, PfpError

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
    reqs = pinned_requirements()
    with translate_errors(), _requirements_map_for(reqs), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"weights": str(weights)},
            pip_requirements=reqs,
            signature=signature,
            model_config={"imgsz": imgsz, "conf": conf, "iou": 0.7},
        )
    return info.model_uri


@contextlib.contextmanager
def _requirements_map_for(reqs: list[str]) -> Iterator[None]:
    """Spare `log_model` its scan of every installed distribution (~1 s in this venv).

    MLflow checks the given requirements against the environment and, to do so, first maps every importable
    module of every installed distribution to its package (`importlib_metadata.packages_distributions()`). Ours
    are pinned from this environment's own metadata, so the check can only pass; a map holding just those
    packages gives it the same answer. The private global is only touched when it has the shape this MLflow
    has, and reset afterwards, so anything else in the process still builds the full map.
    """
    try:
        from mlflow.utils import requirements_utils as ru
    except ImportError:  # pragma: no cover - mlflow without the module
        yield
        return
    if getattr(ru, "_MODULES_TO_PACKAGES", 0) is not None or getattr(ru, "_PACKAGES_TO_MODULES", 0) is not None:
        yield  # already built (or a different MLflow): nothing to spare
        return
    names = [r.split("==")[0] for r in reqs]
    ru._MODULES_TO_PACKAGES = {n.replace("-", "_"): [n] for n in names}
    try:
        yield
    finally:
        ru._MODULES_TO_PACKAGES = None
        ru._PACKAGES_TO_MODULES = None


CHECK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    t = time.time()
    import mlflow, pandas as pd
    m = mlflow.pyfunc.load_model(sys.argv[1])
    rows = None
    if len(sys.argv) > 2:
        out = m.predict(pd.DataFrame({"image": [sys.argv[2]]}))
        cols = list(out.columns)
        need = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]
        assert cols == need, cols
        rows = len(out)
    seconds = round(time.time() - t, 2)
    # only now, once the model has loaded without it: what torch/ultralytics it loaded with (imported already)
    from pfp_mlops.adapters.yolo import runtime_versions
    print(json.dumps({"ok": True, "rows": rows, "seconds": seconds, "runtime": runtime_versions()}))
    """
)


def fresh_process_check(model_uri: str, sample_image: Path | None, *, timeout_s: float = 300) -> dict:
    """Load the logged model through `mlflow.pyfunc.load_model` in a new interpreter and predict one image
    (only load it when there is no image).

    Returns `{"ok", "rows", "seconds", "runtime"}`; `runtime` holds the versions the child actually loaded the
    model with (python, torch, torchvision, ultralytics, cuda): the register step tags the version with these.
    """
    env = _child_env()
    env.pop("PYTHONPATH", None)  # the model must load from what is installed, not from a source tree
    try:
        args = [sys.executable, "-c", CHECK_SCRIPT, model_uri, *([str(sample_image)] if sample_image else [])]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise GateFailed(f"runtime check: loading {model_uri} did not finish within {timeout_s:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = _last_error(lines) or f"exit code {proc.returncode}"
        raise GateFailed(f"runtime check: the model does not load and predict in a fresh process: {last[:300]}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise GateFailed("runtime check: no result from the fresh process") from None


def _child_env() -> dict[str, str]:
    """This process's environment, pointed at the store this process uses (the checks load models:/ URIs)."""
    import mlflow

    return {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
            "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}


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


def _last_error(lines: list[str]) -> str:
    """The most telling line of a child's stderr: the last exception line, else the last line."""
    for ln in reversed(lines):
        if ln and not ln.startswith((" ", "\t")) and ("Error" in ln or "Exception" in ln):
            return ln.strip()
    return lines[-1].strip() if lines else ""


ENV_CHECK_SCRIPT = textwrap.dedent(
    """
    import sys, pandas as pd, mlflow.models
    mlflow.models.predict(sys.argv[1], input_data=pd.DataFrame({"image": [sys.argv[2]]}), env_manager=sys.argv[3],
                          output_path=sys.argv[4])
    """
)
_NETWORK_SIGNS = ("could not resolve host", "could not find a version", "no matching distribution",
                  "failed to establish", "connection refused", "network is unreachable", "max retries",
                  "temporary failure in name resolution", "timed out", "failed to fetch", "connecterror", "dns error",
                  "name or service not known", "proxyerror", "retrying (retry(", "failed to download")
_TOOL_SIGNS = ("could not find the pyenv", "command is not found in the path", "executable not found",
               "no such file or directory: 'uv'", "uv: not found", "virtualenv: not found",
               "no module named virtualenv")


def isolated_env_check(model_uri: str, sample_image: Path, *, env_manager: str = "uv", workdir: Path,
                       timeout_s: float = 1800) -> dict:
    """`--check-env`: build an environment from the model's own requirements and predict one image in it.

    Needs a package index (and for `virtualenv`, pyenv): an environment that cannot be built because the index
    is unreachable is an infrastructure error (exit 3), a missing tool a configuration error (exit 2), a model
    that fails inside a built environment a failed gate (exit 10).
    """
    import time

    from pfp_mlops.domain.errors import InfraError

    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "env_check_prediction.json"
    env = _child_env()
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, "-c", ENV_CHECK_SCRIPT, model_uri, str(sample_image), env_manager,
                               str(out)], capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise InfraError(f"--check-env: building the isolated {env_manager} environment did not finish within "
                         f"{timeout_s:.0f}s (slow or unreachable package index?)") from None
    seconds = round(time.time() - t0, 1)
    if proc.returncode == 0:
        return {"env_manager": env_manager, "seconds": seconds, "ok": True}
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    raise env_check_failure(proc.stderr + proc.stdout, _last_error(lines)[:240] or f"exit code {proc.returncode}",
                            env_manager)


def env_check_failure(output: str, last: str, env_manager: str) -> PfpError:
    """Which error a failed `--check-env` is: unreachable index (3), unusable tool (2), failing model (10)."""
    from pfp_mlops.domain.errors import InfraError

    text = output.lower()
    if any(k in text for k in _NETWORK_SIGNS):
        last = next((ln.strip() for ln in output.splitlines() if any(k in ln.lower() for k in _NETWORK_SIGNS)),
                    last)[:240]
        return InfraError(f"--check-env: could not build the isolated {env_manager} environment from the model's "
                          f"requirements: package index unreachable ({last}); run without --check-env offline")
    if any(k in text for k in _TOOL_SIGNS) or ("not found" in last.lower() and env_manager in last.lower()):
        return ConfigError(f"--check-env: the {env_manager} environment manager is not usable here ({last})")
    return GateFailed(f"--check-env: the model does not load and predict in an isolated {env_manager} environment "
                      f"built from its requirements: {last}")
