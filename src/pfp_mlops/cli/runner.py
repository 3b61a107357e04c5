"""Runs one command: settings → logging → offline switches → service → render; errors → one line + exit code."""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from pfp_mlops.cli.errors import exit_code_for
from pfp_mlops.cli.output import print_error, print_json
from pfp_mlops.logs import setup_logging


class Invocation:
    """What a command body receives: the service context, built by the set-up the Python API shares."""

    def __init__(self, config: Path | None, profile: str | None, demo: bool = False,
                 overrides: list[str] | None = None, flags: list[Any] | None = None,
                 device: str | None = None) -> None:
        from pfp_mlops.overrides import parse_set
        from pfp_mlops.session import open_context

        self.ctx = open_context(config=config, profile=profile, demo=demo,
                                overrides=[*parse_set(overrides or []), *(flags or [])], device=device)
        self.settings = self.ctx.settings
        self.cfg = self.ctx.cfg


def run(
    command: str,
    body: Callable[[Invocation], Any],
    render: Callable[[Any], None],
    *,
    json_out: bool,
    config: Path | None = None,
    profile: str | None = None,
    demo: bool = False,
    result_code: Callable[[Any], int] | None = None,
    overrides: list[str] | None = None,
    flags: list[Any] | None = None,
    device: str | None = None,
) -> None:
    """Execute and exit with the documented code. Never lets a traceback reach the user unless PFP_DEBUG=1.

    `overrides` are the `--set KEY=VALUE` strings, `flags` the command's own config overrides (pfp train's
    `--epochs`, …; applied after them), `device` the `--device` flag (replaces PFP_DEVICE).
    """
    import logging

    t0 = time.time()
    setup_logging("WARNING", "text", None)  # until settings are known
    log = logging.getLogger("pfp")
    try:
        inv = Invocation(config, profile, demo, overrides, flags, device)
        log = logging.getLogger("pfp")
        log.debug("%s: start", command)
        result = body(inv)
        code = result_code(result) if result_code else 0
        log.info("%s: done in %.1fs", command, time.time() - t0)
        if json_out:
            print_json({"ok": code == 0, "command": command, "exit_code": code,
                        "duration_s": round(time.time() - t0, 2), "result": _to_json(result)})
        else:
            render(result)
    except (typer.Exit, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        code = exit_code_for(exc)
        message = getattr(exc, "message", None) or _internal_message(exc)
        if os.environ.get("PFP_DEBUG", "").lower() in ("1", "true", "yes"):
            from pfp_mlops.logs import scrub

            sys.stderr.write(scrub(traceback.format_exc()))
        if json_out:
            payload: dict[str, Any] = {"ok": False, "command": command, "exit_code": code,
                                       "error": {"type": type(exc).__name__, "message": message}}
            partial = getattr(exc, "decision", None) or getattr(exc, "result", None)
            if partial is not None and hasattr(partial, "to_dict"):
                payload["result"] = partial.to_dict()
            print_json(payload)
        elif getattr(exc, "decision", None) is not None and hasattr(exc.decision, "to_dict"):  # type: ignore[attr-defined]
            try:
                render(exc.decision)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - rendering a refusal must not hide it
                pass
        print_error(message)
        raise typer.Exit(code) from None
    raise typer.Exit(code)


def _internal_message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"internal error: {type(exc).__name__}{': ' + first if first else ''} (set PFP_DEBUG=1 for the traceback)"


def _to_json(result: Any) -> Any:
    if hasattr(result, "to_dict"):
        return result.to_dict()
    return result


def usage_error(exc: BaseException, argv: list[str]) -> int:
    """A command-line usage error (unknown option, bad value, unknown command): one line, exit 2, JSON with --json."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.info_name if ctx is not None and ctx.parent is not None else "pfp"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = f"{command}: {message}" if command != "pfp" else message
    code = int(getattr(exc, "exit_code", 2) or 2)
    if "--json" in argv:
        print_json({"ok": False, "command": command, "exit_code": code,
                    "error": {"type": type(exc).__name__, "message": message}})
    print_error(message)
    return code
