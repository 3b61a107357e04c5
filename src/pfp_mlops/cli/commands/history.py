from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def decision_cell(e: dict) -> str:
    """How a validate decision was made (mode, point rule, interval), from the entry's tags; empty for the rest."""
    mode = e.get("decision_mode")
    if not mode:
        return ""
    parts = [f"point {e['point_verdict']}"] if e.get("point_verdict") else []
    if e.get("delta_interval"):
        parts.append(f"interval {e['delta_interval']}")
    return f"{mode}" + (f" ({', '.join(parts)})" if parts else "")


def history(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many entries, newest first.")] = 20,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """The lifecycle ledger: every register, promote, validate decision, rollback and repair, newest first."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.history import run_history

        return run_history(inv.ctx, limit=limit)

    def render(entries):
        output.table("lifecycle ledger (newest first)",
                     ("when", "action", "from", "to", "outcome", "decision", "who", "reasons"),
                     [(e.get("when"), e.get("action"), e.get("from_version"), e.get("to_version"), e.get("outcome"),
                       decision_cell(e), e.get("who"), e.get("reasons") or e.get("reason") or e.get("changes"))
                      for e in entries])

    run("history", body, render, json_out=json, config=config, profile=profile, overrides=set_)
