"""`pfp --help` must stay instant: no torch, ultralytics, mlflow (or other heavy libraries) at import."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "ultralytics", "mlflow", "optuna", "dvc", "boto3", "pandas", "cv2", "numpy", "pydantic_settings",
         "wandb")


def _modules_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_imports_no_heavy_library():
    """Rendering `pfp --help` imports none of the heavy libraries."""
    mods = _modules_after(
        "from pfp_mlops.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)


def test_subcommand_help_imports_no_heavy_library():
    """`pfp run-all --help` is as light as `pfp --help`."""
    mods = _modules_after(
        "from pfp_mlops.cli.app import app\n"
        "try:\n    app(['run-all', '--help'])\nexcept SystemExit:\n    pass"
    )
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)


def test_console_script_and_module_entry_points():
    """`python -m pfp_mlops --help` works and lists every step."""
    out = subprocess.run([sys.executable, "-m", "pfp_mlops", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("split", "train", "register", "promote", "validate", "rollback", "run-all", "status"):
        assert cmd in out.stdout


def test_public_api_name_imports_no_heavy_library():
    """`import pfp_mlops; pfp_mlops.Project` loads the API lazily and none of torch, mlflow, ultralytics, …"""
    mods = _modules_after("import pfp_mlops\nassert 'pfp_mlops.api' not in sys.modules\npfp_mlops.Project")
    assert "pfp_mlops.api" in mods
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)
