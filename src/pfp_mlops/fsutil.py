"""The one atomic writer: write beside the target, then rename over it.

A crash (or Ctrl-C) mid-write never leaves a half-written split list, manifest, cached evaluation or run-all state:
readers see the old file or the new one. The temp file is hidden (`.<name>.*.tmp`) and removed on any failure.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any, **dump_kwargs: Any) -> None:
    """`payload` as JSON (json.dumps keywords pass through: indent, sort_keys)."""
    atomic_write_text(path, json.dumps(payload, **dump_kwargs))
