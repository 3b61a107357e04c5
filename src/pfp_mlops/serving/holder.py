"""The served model: one reference swapped atomically; an old model is freed when its last request is done.

Order, as in Seldon MLServer and Triton: the new version is loaded and warmed before the swap, so a model is
always there to answer; a request holds the version it started with until it finishes (`acquire`), so a swap
never changes the model under a request, and the old one is released only when its in-flight count reaches 0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pfp.serve")


@dataclass(eq=False)
class Served:
    """One loaded model version and the requests using it."""

    name: str
    version: int
    run_id: str
    alias: str
    model: Any
    load_seconds: float = 0.0
    in_flight: int = 0
    retired: bool = False
    freed: bool = False
    on_free: Callable[[Served], None] | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        return {"X-Model-Name": self.name, "X-Model-Version": str(self.version), "X-Model-Alias": self.alias,
                "X-Model-Run-Id": self.run_id}


class ModelHolder:
    """Thread-safe holder of the current `Served`; the only place that swaps or frees models."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Served | None = None
        self._retired: list[Served] = []

    @property
    def current(self) -> Served | None:
        return self._current

    def retired(self) -> list[Served]:
        with self._lock:
            return list(self._retired)

    @contextmanager
    def acquire(self) -> Iterator[Served | None]:
        """The model that answers this request (None before the first load); counted until the block ends."""
        with self._lock:
            served = self._current
            if served is not None:
                served.in_flight += 1
        try:
            yield served
        finally:
            if served is not None:
                self._release(served)

    def swap(self, new: Served) -> Served | None:
        """Make `new` current in one step; the previous one is retired (freed now if idle). Returns it."""
        with self._lock:
            old, self._current = self._current, new
            if old is not None:
                old.retired = True
                self._retired.append(old)
        if old is not None:
            self._free_if_idle(old)
        return old

    def _release(self, served: Served) -> None:
        with self._lock:
            served.in_flight -= 1
        if served.retired:
            self._free_if_idle(served)

    def _free_if_idle(self, served: Served) -> None:
        with self._lock:
            if served.freed or served.in_flight > 0 or not served.retired:
                return
            served.freed = True
            self._retired.remove(served)
        served.model = None  # the last reference the server holds: Python frees the weights
        log.info("freed %s v%d (no request in flight)", served.name, served.version)
        if served.on_free is not None:
            served.on_free(served)
