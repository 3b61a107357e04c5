"""Evaluation fingerprints read library versions from metadata, without importing torch or ultralytics."""

from __future__ import annotations

import json
import subprocess
import sys


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
