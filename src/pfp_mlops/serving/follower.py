"""Follow a registry alias: poll it (jittered), and check at once when any worker is asked to reload.

On a change: load the new version and warm it up in this thread (off the request path), then swap it in; the
holder frees the old one when its last request is done. A failed download, load or warm-up keeps the old
version serving: logged, counted, alerted (once per version, not on every retry), retried on the next poll.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfp_mlops.serving import metrics, state
from pfp_mlops.serving.holder import ModelHolder, Served

log = logging.getLogger("pfp.serve")

Resolve = Callable[[], "tuple[int, str] | None"]  # alias → (version, run_id); None when no version holds it
Load = Callable[[int, str], Served]  # (version, run_id) → loaded and warmed


class AliasFollower:
    def __init__(self, *, name: str, alias: str, holder: ModelHolder, resolve: Resolve, load: Load,
                 poll_seconds: float, state_dir: Path, alert: Callable[[dict[str, Any]], None] | None = None,
                 tick_s: float = 0.2) -> None:
        self.name, self.alias, self.holder = name, alias, holder
        self.resolve, self.load = resolve, load
        self.poll_seconds, self.tick_s = poll_seconds, tick_s
        self.state_dir = state_dir
        self.alert = alert
        self.alias_version: int | None = None
        self.alias_checked = 0.0
        self.last_error: str | None = None
        self.failures = 0
        self._alerted: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one check at a time
        self._thread = threading.Thread(target=self._run, name="pfp-alias-follower", daemon=True)

    def start(self) -> AliasFollower:
        self.write_state()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        marker = state.reload_marker(self.state_dir)
        next_poll = 0.0
        while not self._stop.is_set():
            seen = state.reload_marker(self.state_dir)
            if time.monotonic() >= next_poll or seen != marker:
                marker = seen
                try:
                    self.check()
                except Exception:  # noqa: BLE001 - the follower must survive anything and retry
                    log.exception("alias check failed")
                next_poll = time.monotonic() + self.poll_seconds * random.uniform(0.8, 1.2)
            self._stop.wait(self.tick_s)

    def check(self) -> None:
        """Resolve the alias; swap to its version when it differs from the served one."""
        with self._lock:
            try:
                target = self.resolve()
            except Exception as e:  # noqa: BLE001 - registry unreachable: keep serving, try again
                self.last_error = f"alias check failed: {getattr(e, 'message', None) or type(e).__name__}"
                log.warning("%s", self.last_error)
                self.write_state()
                return
            if target is None:
                self.last_error = f"no version of {self.name} holds alias {self.alias!r}"
                self.alias_version = None
                self.alias_checked = time.time()
                self.write_state()
                return
            version, run_id = target
            self.alias_version, self.alias_checked = version, time.time()
            metrics.ALIAS_VERSION.labels(self.name, self.alias).set(version)
            current = self.holder.current
            if current is not None and current.version == version:
                self.last_error = None
                self.write_state()
                return
            self._load_and_swap(version, run_id, current)

    def _load_and_swap(self, version: int, run_id: str, current: Served | None) -> None:
        t0 = time.monotonic()
        was = f"v{current.version}" if current is not None else "nothing"
        log.info("alias %s -> v%d: loading (serving %s, pid %d)", self.alias, version, was, os.getpid())
        try:
            new = self.load(version, run_id)
        except Exception as e:  # noqa: BLE001 - any failure: keep the old model
            self.failures += 1
            metrics.RELOAD_FAILURES.inc()
            reason = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.last_error = f"reload to v{version} failed: {reason}"
            log.error("reload to v%d failed, still serving %s (pid %d): %s", version, was, os.getpid(), reason)
            if self.alert is not None and version not in self._alerted:
                self._alerted.add(version)
                self.alert({"event": "serve_reload_failed", "model": self.name, "alias": self.alias,
                            "version": version, "serving": current.version if current else None, "error": reason,
                            "summary": f"pfp serve: cannot load {self.name} v{version} ({self.alias}); "
                                       f"still serving {was}: {reason}"})
            self.write_state()
            return
        seconds = time.monotonic() - t0
        new.load_seconds = seconds
        self.holder.swap(new)
        if current is not None:
            metrics.RELOADS.inc()
        metrics.MODEL_VERSION.labels(self.name, self.alias).set(version)
        self._alerted.discard(version)
        self.last_error = None
        log.info("swap: pid %d %s -> v%d (load + warm-up %.2fs)", os.getpid(), was, version, seconds)
        self.write_state()

    def snapshot(self) -> dict[str, Any]:
        cur = self.holder.current
        return {"pid": os.getpid(), "version": cur.version if cur else None, "run_id": cur.run_id if cur else None,
                "alias_version": self.alias_version, "alias_checked": self.alias_checked,
                "last_error": self.last_error, "reload_failures": self.failures}

    def write_state(self) -> None:
        try:
            state.write_worker(self.state_dir, self.snapshot())
        except OSError as e:
            log.warning("cannot write worker state: %s", e)
