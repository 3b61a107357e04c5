"""One set of pins: uv.lock (uv sync) agrees with constraints.txt (pip, make install), and the lock is current.

constraints.txt is the source of truth; `make lock` (scripts/sync_pins.py) makes uv.lock agree. These checks fail
CI when someone adds a dependency to one file without re-running it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import sync_pins  # noqa: E402 - scripts/ is not a package

UV = Path(sys.executable).parent / "uv"

TINY_LOCK = """
version = 1
requires-python = ">=3.11"

[[package]]
name = "pfp-mlops"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "numpy", version = "2.4.6", marker = "python_full_version < '3.12'" },
    { name = "numpy", version = "2.5.5", marker = "python_full_version >= '3.12'" },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "moto", extra = ["server"] },
]

[package.optional-dependencies]
wandb = [{ name = "wandb" }]

[[package]]
name = "numpy"
version = "2.4.6"

[[package]]
name = "numpy"
version = "2.5.5"

[[package]]
name = "colorama"
version = "0.4.6"

[[package]]
name = "moto"
version = "5.2.5"
dependencies = [{ name = "boto3" }]

[package.optional-dependencies]
server = [{ name = "flask" }]

[[package]]
name = "boto3"
version = "1.43.117"

[[package]]
name = "Flask"
version = "3.1.3"

[[package]]
name = "wandb"
version = "0.31.0"
"""


def test_the_committed_lock_agrees_with_constraints_txt():
    """Every package uv sync --all-extras installs on Linux/CPython 3.11 is pinned in constraints.txt at the same
    version, and nothing else is pinned there."""
    problems = sync_pins.check(ROOT)
    assert problems == [], "\n".join(problems) + "\nrun `make lock` (constraints.txt is the source of truth)"
    pins = sync_pins.read_constraints(ROOT / "constraints.txt")
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"  # make install's local wheels


def test_the_lock_is_current_with_pyproject():
    """`uv lock --check` offline: pyproject.toml's dependencies are what uv.lock was resolved from (no download)."""
    assert UV.is_file(), "uv is a dev dependency (pyproject.toml [dev]); reinstall with make install"
    r = subprocess.run([str(UV), "lock", "--check", "--offline", "--quiet"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_graph_walk_follows_markers_forks_and_extras(tmp_path):
    lock = tmp_path / "uv.lock"
    lock.write_text(TINY_LOCK, encoding="utf-8")
    got = sync_pins.lock_pins(lock)
    # numpy's 3.11 fork only, no Windows-only colorama, moto[server]'s flask, the optional wandb extra
    assert got == {"numpy": "2.4.6", "moto": "5.2.5", "boto3": "1.43.117", "flask": "3.1.3", "wandb": "0.31.0"}
    on_312 = sync_pins.lock_pins(lock, {**sync_pins.LINUX_CP311, "python_full_version": "3.12.1",
                                        "python_version": "3.12"})
    assert on_312["numpy"] == "2.5.5"


def test_every_kind_of_disagreement_is_reported(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# pins\nnumpy==2.4.6\nMoto==5.2.4\nboto3==1.43.117\nFlask==3.1.3\nrich==15.0.0\n")
    lock = tmp_path / "uv.lock"
    lock.write_text(TINY_LOCK, encoding="utf-8")
    problems = sync_pins.disagreements(sync_pins.read_constraints(constraints), sync_pins.lock_pins(lock))
    assert problems == [
        "moto: constraints.txt 5.2.4, uv.lock 5.2.5",
        "rich==15.0.0 is in constraints.txt but uv.lock does not install it on Linux/CPython 3.11",
        "wandb==0.31.0 is installed from uv.lock but not pinned in constraints.txt",
    ]


def test_a_malformed_constraint_line_names_its_line(tmp_path):
    bad = tmp_path / "constraints.txt"
    bad.write_text("numpy==2.4.6\ntorch>=2\n")
    with pytest.raises(ValueError, match=r"constraints.txt:2: expected name==version"):
        sync_pins.read_constraints(bad)
