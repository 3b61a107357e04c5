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


# --- the serial speed-ups beside the workers: folder listings, label rows, the garbage collector --------------------

def test_find_file_uses_folder_listings_and_falls_back_to_lstat(tmp_path, monkeypatch):
    """A name is found through its folder's listing (`..` segments included); a symlinked file is resolved and
    checked like any other; an escape through a symlink is refused; a missing name is None; a name no listing
    holds (a case-insensitive file system spells it otherwise: here, listings made empty) is still found by lstat,
    symlinks resolved the same way."""
    from pfp_mlops.domain.errors import DataError
    from pfp_mlops.services.ingest.model import Root

    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "sub" / "x.png").write_bytes(b"x")
    (tmp_path / "b" / "y.png").write_bytes(b"y")
    (tmp_path / "b" / "link.png").symlink_to(tmp_path / "a" / "sub" / "x.png")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    outside.write_bytes(b"o")
    (tmp_path / "b" / "escape.png").symlink_to(outside)
    root = Root(str(tmp_path))
    cands = [str(tmp_path / "a"), str(tmp_path / "b")]
    real = os.path.realpath
    assert root.find_file(cands, "sub/x.png", "t") == (str(tmp_path / "a" / "sub" / "x.png"),
                                                       real(tmp_path / "a" / "sub" / "x.png"))
    assert root.find_file(cands, "y.png", "t") == (str(tmp_path / "b" / "y.png"), real(tmp_path / "b" / "y.png"))
    assert root.find_file(cands, "link.png", "t")[1] == real(tmp_path / "a" / "sub" / "x.png")
    assert root.find_file(cands, "../a/sub/x.png", "t")[1] == real(tmp_path / "a" / "sub" / "x.png")
    assert root.find_file(cands, "missing.png", "t") is None
    with pytest.raises(DataError, match="escapes the source root"):
        root.find_file(cands, "escape.png", "t")
    from pfp_mlops.services.ingest import model

    monkeypatch.setattr(model, "_listing", lambda folder: {})
    fresh = Root(str(tmp_path))
    assert fresh.find_file(cands, "y.png", "t") == (str(tmp_path / "b" / "y.png"), real(tmp_path / "b" / "y.png"))
    assert fresh.find_file(cands, "link.png", "t")[1] == real(tmp_path / "a" / "sub" / "x.png")
    assert fresh.find_file(cands, "missing.png", "t") is None
    with pytest.raises(DataError, match="escapes the source root"):
        fresh.find_file(cands, "escape.png", "t")


def test_format_rows_is_format_row_per_line():
    from pfp_mlops.domain.labels import format_row, format_rows

    boxes = [(0, 0.5, 0.25, 0.1, 0.2), (12, 1e-7, 0.9999995, 0.12345649999, 1.0)]
    assert format_rows(boxes) == "".join(format_row(*b) + "\n" for b in boxes)
    assert format_rows([]) == ""


@pytest.mark.parametrize("enabled", [True, False])
def test_an_ingest_leaves_the_garbage_collector_as_it_found_it(tmp_path, enabled):
    """run_ingest switches the cyclic GC off while it runs (and only then), on success and on error alike."""
    import gc

    from pfp_mlops.domain.errors import DataError
    from pfp_mlops.services.ingest import run_ingest, service
    from pfp_mlops.settings import PipelineConfig

    seen = []
    real = service.read_source

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        src = tmp_path / "src"
        (src / "images").mkdir(parents=True)
        service.read_source = spy
        with pytest.raises(DataError):
            run_ingest(PipelineConfig(), src, out=tmp_path / "data")  # no images: refused after reading
        assert seen == [False] and gc.isenabled() is enabled
        with pytest.raises(DataError):
            run_ingest(PipelineConfig(), tmp_path / "missing", out=tmp_path / "data")
        assert gc.isenabled() is enabled
    finally:
        service.read_source = real
        (gc.enable if was else gc.disable)()
