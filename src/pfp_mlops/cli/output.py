"""The one renderer: rich tables for people, `--json` for machines, one error line on stderr. Secrets scrubbed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from pfp_mlops.logs import scrub  # the secret registry and the log set-up: pfp_mlops/logs.py (the API's too)


def print_json(payload: Any) -> None:
    sys.stdout.write(scrub(json.dumps(payload, indent=2, default=str, allow_nan=False)) + "\n")
    sys.stdout.flush()


def print_error(message: str) -> None:
    line = scrub(" ".join(str(message).split()))
    sys.stderr.write(f"pfp: error: {line}\n")
    sys.stderr.flush()


def print_warning(message: str) -> None:
    """A warning that is not a failure (e.g. a model server that did not follow): its own line on stderr."""
    line = scrub(" ".join(str(message).split()))
    sys.stderr.write(f"pfp: warning: {line}\n")
    sys.stderr.flush()


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(scrub(_fmt(v)) for v in r))
    console().print(t)


def kv(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    table(title, ("", ""), pairs)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list | tuple):
        return ", ".join(_fmt(x) for x in v) or "-"
    return str(v)
