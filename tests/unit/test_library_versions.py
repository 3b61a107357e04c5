"""Evaluation fingerprints read library versions from metadata, without importing torch or ultralytics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow  # imports torch and ultralytics (~1.5 s): the fast tier stays under 60 s
def test_metadata_versions_equal_the_imported_ones():
    """`library_versions()` gives what the imported libraries report (minus CUDA), so cached results still match."""
    from pfp_mlops.adapters import yolo

    imported = yolo.runtime_versions()
    imported.pop("cuda")
    assert yolo.library_versions() == imported


def test_fingerprint_does_not_import_torch():
    """Computing a protocol fingerprint imports neither torch nor ultralytics."""
    code = (
        "import sys, json\n"
        "from pfp_mlops.adapters import yolo\n"
        "yolo.protocol_fingerprint({'imgsz': 64}, 'abc')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_log_model_requirement_check_still_catches_a_mismatch_with_the_scoped_map(caplog, monkeypatch):
    """`packaging._requirements_map_for` spares MLflow's scan of every installed distribution while logging; with
    it in place MLflow's own check still passes the pinned requirements, still warns about a wrong pin, and the
    full map is rebuilt afterwards."""
    import logging

    from mlflow.utils import requirements_utils as ru

    from pfp_mlops.adapters import packaging

    reqs = packaging.pinned_requirements()
    assert any(r.startswith("torch==") for r in reqs)
    monkeypatch.setattr(ru, "_MODULES_TO_PACKAGES", None)  # as in a fresh `pfp register` process
    monkeypatch.setattr(ru, "_PACKAGES_TO_MODULES", None)
    with packaging._requirements_map_for(reqs), caplog.at_level(logging.WARNING, logger=ru.__name__):
        assert all(ru._check_requirement_satisfied(r) is None for r in reqs)
        assert ru._check_requirement_satisfied("numpy==0.0.1") is not None
        ru.warn_dependency_requirement_mismatches(["numpy==0.0.1"])
    assert "numpy (current:" in caplog.text
    assert ru._MODULES_TO_PACKAGES is None and ru._PACKAGES_TO_MODULES is None
