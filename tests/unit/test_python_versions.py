"""Python support policy (README "Python versions"): 3.11 in CI, 3.12/3.13 supported, 3.14 untested.

Nothing in the code may block 3.12/3.13: no syntax newer than 3.11 (it must run on CI's 3.11), and no import of a
standard-library module that 3.12 or 3.13 removed.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REMOVED = {  # PEP 594 (3.13) and 3.12's removals
    "distutils", "imp", "asynchat", "asyncore", "smtpd", "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt",
    "imghdr", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib",
    "uu", "xdrlib", "lib2to3",
}


def _sources() -> list[Path]:
    return [p for folder in ("src", "tests", "scripts", "benchmarks") for p in (REPO / folder).rglob("*.py")]


def test_declared_versions_match_the_policy():
    """requires-python >= 3.11; classifiers name 3.11 up to 3.14 (issue #2: declared; 3.14 cannot be tested here)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    classifiers = set(project["classifiers"])
    for v in ("3.11", "3.12", "3.13", "3.14"):
        assert f"Programming Language :: Python :: {v}" in classifiers


def test_sources_parse_as_python_3_11_and_import_nothing_removed_since():
    """Every module parses with 3.11's grammar and imports no stdlib module removed in 3.12 or 3.13."""
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 11))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] not in REMOVED, f"{path}: imports {name}"
