"""What the workers of one server share: a folder with one small state file per worker and a reload marker.

Each uvicorn worker is its own process with its own model and its own alias follower. So that any worker can
answer "do ALL workers serve the alias's current version?" (`/v2/health/ready`), each one writes
`worker-<pid>.json` (served version, the alias version it last saw, when) atomically after every change, and
`POST /admin/reload` on any worker touches `reload`, which every follower watches. `pfp serve` empties the
folder at start and writes `server.json` (how many workers to expect).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def state_dir(home: Path, port: int) -> Path:
    return home / "serve" / f"port-{port}"


def reset(directory: Path, *, workers: int, model: str, alias: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for p in directory.glob("worker-*.json"):
        p.unlink(missing_ok=True)
    _write(directory / "server.json", {"workers": workers, "model": model, "alias": alias, "pid": os.getpid(),
                                       "started": time.time()})


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_worker(directory: Path, data: dict[str, Any]) -> None:
    _write(directory / f"worker-{os.getpid()}.json", {"pid": os.getpid(), "updated": time.time(), **data})


def remove_worker(directory: Path) -> None:
    (directory / f"worker-{os.getpid()}.json").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workers(directory: Path) -> list[dict[str, Any]]:
    """State of every live worker, by pid (a crashed worker's stale file is ignored)."""
    out = []
    for p in sorted(directory.glob("worker-*.json")):
        data = _read(p)
        if data and isinstance(data.get("pid"), int) and _alive(data["pid"]):
            out.append(data)
    return out


def expected_workers(directory: Path) -> int:
    data = _read(directory / "server.json") or {}
    return int(data.get("workers", 1))


def request_reload(directory: Path) -> int:
    """Tell every worker's follower to check the alias now; returns the marker value."""
    stamp = time.time_ns()
    _write(directory / "reload", {"at": stamp})
    return stamp


def reload_marker(directory: Path) -> int:
    return int((_read(directory / "reload") or {}).get("at", 0))


def summary(directory: Path, *, me: dict[str, Any]) -> dict[str, Any]:
    """All workers' view: the alias version last seen (the most recent check wins) and who serves what."""
    seen = workers(directory)
    if not any(w.get("pid") == me.get("pid") for w in seen):
        seen.append(me)
    latest = max(seen, key=lambda w: float(w.get("alias_checked", 0) or 0))
    alias_version = latest.get("alias_version")
    expected = expected_workers(directory)
    current = (alias_version is not None and len(seen) >= expected
               and all(w.get("version") == alias_version for w in seen))
    return {"alias_version": alias_version, "expected_workers": expected, "all_current": current,
            "workers": [{"pid": w.get("pid"), "version": w.get("version"), "alias_version": w.get("alias_version"),
                         "last_error": w.get("last_error")} for w in seen]}
