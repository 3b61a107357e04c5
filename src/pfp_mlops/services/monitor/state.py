"""What the monitor has computed: `<PFP_HOME>/monitor/state.json`, written atomically after every window.

Per (model, version): the MLflow run, the summaries of the windows computed (their step is their position), the
count-window cursor, the consecutive fail / inconclusive counts and whether the monitor rolled this version back.
The MLflow run is the second record (a `pfp.window.<step>` tag per window): a window logged to MLflow whose state
write was lost (a kill between the two) is adopted from the tag on the next run, never computed twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import UserError

SCHEMA = 1


def state_path(home: Path) -> Path:
    return home / "monitor" / "state.json"


def load(home: Path) -> dict[str, Any]:
    path = state_path(home)
    if not path.is_file():
        return {"schema": SCHEMA, "models": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{path}: unreadable monitor state; move it away to start over (windows already in MLflow "
                        f"are adopted again)") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(f"{path}: unknown monitor state format")
    return data


def save(home: Path, state: dict[str, Any]) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def version_state(state: dict[str, Any], model: str, version: int) -> dict[str, Any]:
    v = state["models"].setdefault(model, {}).setdefault(str(version), {})
    v.setdefault("windows", [])
    v.setdefault("fail_streak", 0)
    v.setdefault("inconclusive_streak", 0)
    v.setdefault("count_cursor", None)
    v.setdefault("count_next", 0)
    v.setdefault("rolled_back", False)
    return v


def last_verdict(home: Path, model: str, version: int | None) -> dict[str, Any] | None:
    """The latest window summary of a version (for `pfp status`); None when never monitored."""
    if version is None or not state_path(home).is_file():
        return None
    try:
        windows = load(home)["models"].get(model, {}).get(str(version), {}).get("windows", [])
    except UserError:
        return None
    return windows[-1] if windows else None


@contextlib.contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """One monitor run per PFP_HOME at a time (a second one stops with exit 2 instead of double-counting)."""
    import fcntl

    path = home / "monitor" / "monitor.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `pfp monitor` is running on {home} ({path} is locked)") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
