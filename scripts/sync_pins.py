#!/usr/bin/env python3
"""One set of pins for two installers: `constraints.txt` (pip, `make install`) and `uv.lock` (`uv sync`).

Direction: **constraints.txt is the source of truth.** It holds the versions the test suite runs on (pip installs
them from local disk here, torch 2.14.1 / torchvision 0.29.1 included); a new dependency goes into
`pyproject.toml` and `constraints.txt`, then `make lock` (this script) makes `uv.lock` agree:

    scripts/sync_pins.py lock     # uv lock, then re-lock every package whose version differs from constraints.txt
    scripts/sync_pins.py check    # exit 1 listing every disagreement (CI: tests/unit/test_pins.py does the same)

"Agree" means: the packages `uv sync --all-extras` would install on Linux x86_64 with CPython 3.11 (the lock's
dependency graph walked from the project, markers evaluated for that platform) are exactly the packages of
constraints.txt, at the same versions. The lock also holds packages for other platforms and Pythons (colorama
on Windows, a newer numpy on 3.12+); those cannot be pinned by a pip constraints file and are left to uv.

`uv lock` reads package metadata only (no wheel is downloaded: torch's CUDA wheels stay on the index); `-P
name==version` is uv's documented way to move one locked package to a given version.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "pfp-mlops"
# The platform constraints.txt is tested on (CI and `make install`): Linux x86_64, CPython 3.11.
LINUX_CP311 = {
    "implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
    "platform_machine": "x86_64", "platform_python_implementation": "CPython", "platform_release": "",
    "platform_system": "Linux", "platform_version": "", "python_full_version": "3.11.7", "python_version": "3.11",
    "sys_platform": "linux",
}


def read_constraints(path: Path) -> dict[str, str]:
    """`name==version` lines (comments and blank lines ignored) → {canonical name: version}."""
    pins: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._\-]*)\s*==\s*([^\s;]+)", line)
        if not m:
            raise ValueError(f"{path.name}:{n}: expected name==version, got {line!r}")
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def _applies(dep: dict, env: dict[str, str]) -> bool:
    return "marker" not in dep or Marker(dep["marker"]).evaluate(env)


def lock_pins(lock_path: Path, env: dict[str, str] | None = None,
              extras: tuple[str, ...] | None = None) -> dict[str, str]:
    """The packages (and versions) that `uv sync --all-extras` (or `--extra E` for each of `extras`) installs from
    `lock_path` on `env`'s platform."""
    env = env or LINUX_CP311
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    by_name: dict[str, list[dict]] = {}
    for pkg in lock.get("package", []):
        by_name.setdefault(canonicalize_name(pkg["name"]), []).append(pkg)

    def resolve(dep: dict) -> dict:
        cands = by_name[canonicalize_name(dep["name"])]
        if "version" in dep:  # a forked resolution names the version it means
            cands = [p for p in cands if p["version"] == dep["version"]]
        if len(cands) != 1:
            raise ValueError(f"uv.lock: cannot tell which {dep['name']} is meant ({len(cands)} candidates)")
        return cands[0]

    root = resolve({"name": PROJECT})
    seen: dict[str, str] = {}
    wanted = tuple(root.get("optional-dependencies", {})) if extras is None else extras
    todo: list[tuple[dict, tuple[str, ...]]] = [(root, wanted)]
    done: set[tuple[str, str, tuple[str, ...]]] = set()
    while todo:
        pkg, extras = todo.pop()
        key = (pkg["name"], pkg["version"], extras)
        if key in done:
            continue
        done.add(key)
        deps = list(pkg.get("dependencies", []))
        for extra in extras:
            deps += pkg.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            if not _applies(dep, env):
                continue
            target = resolve(dep)
            name = canonicalize_name(target["name"])
            if name != PROJECT:
                seen[name] = target["version"]
            todo.append((target, tuple(sorted(dep.get("extra", [])))))
    return seen


def disagreements(constraints: dict[str, str], locked: dict[str, str]) -> list[str]:
    """Human-readable differences; empty when both files pin the same set of packages at the same versions."""
    out = []
    for name in sorted(constraints.keys() | locked.keys()):
        c, u = constraints.get(name), locked.get(name)
        if c == u:
            continue
        if u is None:
            out.append(f"{name}=={c} is in constraints.txt but uv.lock does not install it on Linux/CPython 3.11")
        elif c is None:
            out.append(f"{name}=={u} is installed from uv.lock but not pinned in constraints.txt")
        else:
            out.append(f"{name}: constraints.txt {c}, uv.lock {u}")
    return out


def _uv() -> str:
    found = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        sys.exit("sync_pins: uv not found (pip install uv, or put it on PATH)")
    return found


def check(root: Path = ROOT) -> list[str]:
    lock = root / "uv.lock"
    if not lock.is_file():
        return ["uv.lock is missing: run `make lock`"]
    return disagreements(read_constraints(root / "constraints.txt"), lock_pins(lock))


def lock(root: Path = ROOT) -> int:
    uv = _uv()
    subprocess.run([uv, "lock", "--quiet"], cwd=root, check=True)
    pins = read_constraints(root / "constraints.txt")
    locked = lock_pins(root / "uv.lock")
    moves = [f"{n}=={v}" for n, v in sorted(pins.items()) if n in locked and locked[n] != v]
    if moves:
        args = [a for m in moves for a in ("-P", m)]
        subprocess.run([uv, "lock", "--quiet", *args], cwd=root, check=True)
        print(f"sync_pins: re-locked {len(moves)} package(s) to constraints.txt: {', '.join(moves)}")
    problems = check(root)
    for p in problems:
        print(f"sync_pins: {p}", file=sys.stderr)
    if problems:
        print("sync_pins: pin the packages above in constraints.txt (the versions you tested), then run `make lock` "
              "again", file=sys.stderr)
        return 1
    print(f"sync_pins: uv.lock agrees with constraints.txt ({len(pins)} packages)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("lock", "check"))
    a = ap.parse_args(argv)
    if a.command == "lock":
        return lock()
    problems = check()
    for p in problems:
        print(f"sync_pins: {p}", file=sys.stderr)
    if problems:
        print("sync_pins: run `make lock` (constraints.txt is the source of truth)", file=sys.stderr)
        return 1
    print("sync_pins: uv.lock agrees with constraints.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
