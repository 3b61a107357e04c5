"""Spreading the per-image work of an ingest (read + hash + header check; link + label write) over processes.

Each image costs a few system calls and a sha256: ~15 µs for an 8×8 PNG, milliseconds for a camera JPEG, all of
it independent of the other images. `map_ranges` cuts the list into contiguous ranges and runs them in forked
workers: the children inherit the job (the function and the list) through fork, so nothing is pickled on the way
in; each range's results come back pickled (tens of bytes an image) and are concatenated in order, so the caller
sees exactly what a serial loop would have returned (same results, same order, same first exception).

Serial when parallelism cannot pay or is not safe: fewer than `MIN_PARALLEL` items, one usable CPU, a platform
where fork is not the safe default (only Linux forks here), or a process that already runs threads (forking a
threaded process can deadlock on a lock a thread held).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_PARALLEL = 4000   # below this, forking (~20 ms) costs about what the workers would save
MAX_AUTO = 8          # auto never takes more than 8 workers: the work is mostly system calls on one file system
CHUNKS_PER_WORKER = 4  # a few ranges per worker balance a slow range (cold cache, a large image) across them

_job: tuple[Callable[[Sequence[Any]], list[Any]], Sequence[Any]] | None = None


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def idle_cpus() -> int:
    """The usable CPUs less what other processes keep busy, at least 1: what `make -l` and `xargs -P` users do by
    hand. Others' load is the 1-minute load average less one for this process (which is running, and whose recent
    seconds the average counts). A worker on a CPU another process keeps busy only adds the cost of forking and
    merging (measured: 10–20 % slower than serial on 2 cores with one of them busy)."""
    cpus = usable_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cpus
    return max(1, min(cpus, cpus - round(max(0.0, load - 1.0))))


def workers_for(n_items: int, requested: int = 0) -> int:
    """How many processes to use for `n_items`: `requested` (> 0, at most one an item) or auto (the idle CPUs, at
    most MAX_AUTO, and serial below MIN_PARALLEL items); 1 wherever forking is not safe."""
    if n_items < 2 or not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    if requested > 0:
        return min(requested, n_items)
    if n_items < MIN_PARALLEL:
        return 1
    return min(idle_cpus(), MAX_AUTO)


def _run_range(bounds: tuple[int, int]) -> list[Any]:
    assert _job is not None
    fn, items = _job
    return fn(items[bounds[0]:bounds[1]])


def map_ranges(fn: Callable[[Sequence[T]], list[R]], items: Sequence[T], workers: int) -> list[R]:
    """`fn(items)`, computed as `fn` over contiguous ranges in `workers` forked processes when workers > 1.

    `fn` takes a slice and returns one result per item (or any list: the lists are concatenated in order). An
    exception raised in a worker is raised here, and the pool is stopped.
    """
    if workers <= 1 or len(items) < 2:
        return fn(items)
    import multiprocessing

    global _job
    n = len(items)
    k = min(n, workers * CHUNKS_PER_WORKER)
    bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
    _job = (fn, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_run_range, bounds, chunksize=1)
    finally:
        _job = None
    out: list[R] = []
    for p in parts:
        out += p
    return out
