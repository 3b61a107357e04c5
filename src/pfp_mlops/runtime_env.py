"""The one place that keeps Ultralytics, MLflow and DVC off the network. Used by the CLI and the tests.

Must run before `ultralytics` is imported: Ultralytics reads its settings directory and offline flags at import.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "YOLO_VERBOSE": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_CONFIGURE_LOGGING": "false",
    # Against a tracking server MLflow writes "View run … at: URL" to stdout on every end_run: `--json` must stay JSON.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "TQDM_DISABLE": "1",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "GIT_PYTHON_REFRESH": "quiet",
    # MLflow would otherwise pin every dependency it can infer by importing the model in a subprocess.
    "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "60",
    # Artifacts and registry calls fail fast on a dead server instead of retrying for minutes.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

# Ultralytics settings that would call home or start integrations we log ourselves.
ULTRALYTICS_SETTINGS = {
    "sync": False,
    "mlflow": False,
    "hub": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "neptune": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


def apply_offline_env(home: Path, *, override: bool = False) -> Path:
    """Set the offline switches and a private Ultralytics config dir with the fonts it would download."""
    yolo_dir = (home / "ultralytics").resolve()
    env = dict(OFFLINE_ENV, YOLO_CONFIG_DIR=str(yolo_dir))
    for key, value in env.items():
        if override or key not in os.environ:
            os.environ[key] = value
    quiet_warnings()
    font_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    _install_fonts(font_dir)
    return font_dir


def quiet_warnings() -> None:
    """Library UserWarnings (MLflow's type-hint hints, …) are noise on a CLI; pfp reports what matters itself."""
    import warnings

    for module in ("mlflow", "ultralytics", "optuna", "pydantic", "torch", "sqlalchemy", "alembic"):
        warnings.filterwarnings("ignore", module=module)
    warnings.filterwarnings("ignore", category=UserWarning, message=".*type hint.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*input example.*")


def _install_fonts(font_dir: Path) -> None:
    """`check_font` contacts GitHub on every train/val unless Arial.ttf is present: copy matplotlib's DejaVuSans."""
    targets = [font_dir / "Arial.ttf", font_dir / "Arial.Unicode.ttf"]
    if all(t.exists() for t in targets):
        return
    source = _find_dejavu()
    if source is None:
        return
    font_dir.mkdir(parents=True, exist_ok=True)
    for t in targets:
        if not t.exists():
            shutil.copyfile(source, t)


def _find_dejavu() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.exists() else None


def configure_ultralytics() -> None:
    """Apply ULTRALYTICS_SETTINGS (after apply_offline_env); imports ultralytics."""
    from ultralytics import settings

    # Only keys this Ultralytics release knows (they come and go between releases).
    changed = {k: v for k, v in ULTRALYTICS_SETTINGS.items() if k in settings and settings.get(k) != v}
    if changed:
        settings.update(changed)
