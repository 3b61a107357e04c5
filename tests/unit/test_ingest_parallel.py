"""parallel.map_ranges: forked workers over ranges give the serial result, in order; errors reach the caller."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pfp_mlops.services.ingest import parallel


def _square_with_pid(xs):
    time.sleep(0.02)  # long enough that every worker gets a range before one worker could take them all
    return [(x * x, os.getpid()) for x in xs]


def test_ranges_come_back_in_order_from_several_processes():
    items = list(range(1000))
    got = parallel.map_ranges(_square_with_pid, items, 3)
    assert [v for v, _ in got] == [x * x for x in items]
    pids = {p for _, p in got}
    assert os.getpid() not in pids and len(pids) >= 2
    assert parallel._job is None  # the job does not outlive the call


def test_one_worker_or_one_item_runs_here():
    assert {p for _, p in parallel.map_ranges(_square_with_pid, list(range(10)), 1)} == {os.getpid()}
    assert parallel.map_ranges(_square_with_pid, [3], 4) == [(9, os.getpid())]
    assert parallel.map_ranges(_square_with_pid, [], 4) == []


def _fail_on_seven(xs):
    if 7 in xs:
        raise ValueError("item 7 is bad")
    return list(xs)


def test_a_worker_exception_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="item 7 is bad"):
        parallel.map_ranges(_fail_on_seven, list(range(100)), 2)
    assert parallel._job is None


def test_how_many_workers(monkeypatch):
    """Auto: serial below MIN_PARALLEL, else the idle CPUs (at most MAX_AUTO); asked for: honoured, one an item at
    most; never a fork while threads run. (The suite's process may run threads by now: pinned to one here, and the
    idle CPUs fixed, so the rule is what is tested.)"""
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    monkeypatch.setattr(parallel, "idle_cpus", lambda: 3)
    assert parallel.workers_for(100, 0) == 1
    assert parallel.workers_for(parallel.MIN_PARALLEL, 0) == 3
    monkeypatch.setattr(parallel, "idle_cpus", lambda: 32)
    assert parallel.workers_for(100_000, 0) == parallel.MAX_AUTO
    assert parallel.workers_for(100, 3) == 3
    assert parallel.workers_for(2, 8) == 2 and parallel.workers_for(1, 8) == 1
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 2)
    assert parallel.workers_for(100_000, 4) == 1 and parallel.workers_for(100_000, 0) == 1


def test_a_running_thread_means_serial():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert parallel.workers_for(100_000, 4) == 1
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize(("load", "idle"), [(0.0, 4), (0.9, 4), (1.6, 3), (2.4, 3), (3.0, 2), (9.0, 1)])
def test_idle_cpus_is_the_cpus_less_others_load(monkeypatch, load, idle):
    """The 1-minute load average counts this process too: others' load is the average less one."""
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 4)
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (load, load, load))
    assert parallel.idle_cpus() == idle
