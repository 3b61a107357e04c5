"""Helpers shared by the benchmark modules: timing child processes, medians, result rows.

The machines these run on are shared and noisy: every figure is a median of several runs, and every target that
can be is a ratio against a baseline measured in the same run, in alternating order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: pfp, dvc, yolo, mlflow


def quick() -> bool:
    """`run.py --quick`: fewer repeats, no minutes-long benchmarks."""
    return os.environ.get("PFP_BENCH_QUICK", "") == "1"


def repeats(full: int, fast: int) -> int:
    return fast if quick() else full


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked child: pfp's offline switches, a private PFP_HOME, no user services."""
    sys.path.insert(0, str(REPO / "src"))
    from pfp_mlops.runtime_env import OFFLINE_ENV

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "PFP_", "AWS_")) and k != "VIRTUAL_ENV_PROMPT"}
    env.update(OFFLINE_ENV)
    env.update(PFP_HOME=str(home), YOLO_CONFIG_DIR=str(home / "ultralytics"), PFP_LOG_LEVEL="WARNING")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def scratch_dir() -> str | None:
    """/dev/shm when it has room: 200,000 small files on a shared disk take minutes to write when others write too."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 3 * 2**30 and os.access(shm, os.W_OK):
            return str(shm)
    except OSError:
        pass
    return None


@contextlib.contextmanager
def scratch(name: str, *, small_files: bool = False) -> Iterator[Path]:
    """A fresh folder for one benchmark (`pfp-bench-<name>-…`), removed afterwards whatever happens; with
    `small_files`, in /dev/shm when it has room (see scratch_dir)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"pfp-bench-{name}-", dir=scratch_dir() if small_files else None))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pfp_project(tmp: Path, config: Mapping[str, Any], steps: Sequence[Sequence[str]], *, timeout: float = 900,
                **env: str) -> tuple[Path, dict[str, str], str]:
    """A project in `tmp` built by real `pfp` processes: `cfg.yaml` from `config`, then `pfp STEP --config cfg.yaml`
    for each step (demo-data, split, train, register, …), untimed. Returns (config path, the children's
    environment (offline_env plus `env`), the pfp executable)."""
    cfg = tmp / "cfg.yaml"
    cfg.write_text(json.dumps(config))
    child_env = offline_env(tmp / ".pfp", **env)
    pfp = str(BIN / "pfp")
    for step in steps:
        measure([pfp, *step, "--config", str(cfg)], env=child_env, cwd=tmp, timeout=timeout)
    return cfg, child_env, pfp


def in_process_project(root: Path, config: Mapping[str, Any], **env: str) -> Path:
    """This process made a pfp user inside a fresh project at `root`, for benchmarks that time pfp in process:
    the working directory, a private PFP_HOME, no user services or profile, `env` on top, the offline switches,
    `base.yaml` from `config`, then `pfp demo-data` and `pfp split` in process. Returns the config path. The caller
    restores the working directory."""
    import yaml

    sys.path.insert(0, str(REPO / "src"))
    os.chdir(root)
    os.environ["PFP_HOME"] = str(root / ".pfp")
    for k in ("MLFLOW_TRACKING_URI", "PFP_CONFIG", "PFP_PROFILE", "PFP_OPTUNA_STORAGE", "PFP_DEVICE"):
        os.environ.pop(k, None)
    os.environ["PFP_LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    from pfp_mlops.runtime_env import apply_offline_env

    apply_offline_env(root / ".pfp", override=True)
    (root / "base.yaml").write_text(yaml.safe_dump(dict(config)))
    from typer.testing import CliRunner

    from pfp_mlops.cli.app import app

    for cmd in ("demo-data", "split"):
        r = CliRunner().invoke(app, [cmd, "--config", str(root / "base.yaml")])
        assert r.exit_code == 0, r.output
    return root / "base.yaml"


class Measured(NamedTuple):
    wall: float  # seconds
    rss_mib: float  # the child's own peak resident set
    cpu: float  # user + system seconds of the child (less sensitive than wall to other users of the cores)
    proc: subprocess.CompletedProcess


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            check: bool = True, timeout: float = 900) -> Measured:
    """Run a child; return its wall time, its own peak RSS, its CPU time and the completed process.

    The child is reaped with wait4, so its peak RSS is its own (RUSAGE_CHILDREN would be the max over all children).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM from the runner): leave no child behind
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return Measured(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, done)


def alternate(fns: dict[str, Callable[[], float]], n: int, warmup: int = 1) -> dict[str, list[float]]:
    """Call each timing function n times in rotating order (after `warmup` untimed rounds); all samples per name."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        order = names[i % len(names):] + names[: i % len(names)]
        if i % 2:
            order.reverse()
        for name in order:
            out[name].append(fns[name]())
    return out


class ChildRuns(NamedTuple):
    wall: dict[str, list[float]]  # per name, the timed runs (warm-up rounds left out), like alternate()'s result
    cpu: dict[str, list[float]]
    rss: dict[str, list[float]]
    last: dict[str, subprocess.CompletedProcess]  # each name's last run: its output, for correctness checks


def alternate_children(argvs: Mapping[str, Sequence[str]], n: int, *, env: dict[str, str], cwd: Path,
                       warmup: int = 1, before: Callable[[], None] | None = None) -> ChildRuns:
    """`alternate` over child processes: each command run n times in rotating order after `warmup` untimed rounds,
    `before()` (untimed: e.g. removing the previous run's output) ahead of every run. Wall time, CPU time and peak
    RSS of the timed runs; a child that exits non-zero raises (`measure`)."""
    runs = ChildRuns({k: [] for k in argvs}, {k: [] for k in argvs}, {k: [] for k in argvs}, {})
    calls = dict.fromkeys(argvs, 0)

    def timed(name: str) -> Callable[[], float]:
        def go() -> float:
            if before is not None:
                before()
            m = measure(argvs[name], env=env, cwd=cwd)
            runs.last[name] = m.proc
            calls[name] += 1
            if calls[name] > warmup:
                runs.cpu[name].append(m.cpu)
                runs.rss[name].append(m.rss_mib)
            return m.wall
        return go

    runs.wall.update(alternate({k: timed(k) for k in argvs}, n, warmup=warmup))
    return runs


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: Sequence[float]) -> str:
    """`min–max of n` for the note column."""
    return f"{min(xs):.3g}–{max(xs):.3g} s over {len(xs)}" if xs else ""


def row(name: str, value: float | None, unit: str, *, baseline: float | None = None, ratio: float | None = None,
        target: str = "", ok: bool | None = None, note: str = "") -> dict[str, Any]:
    """One result row in the runner's protocol."""
    if ratio is None and baseline and value is not None:
        ratio = value / baseline
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "target": target,
            "ok": ok, "note": note}
