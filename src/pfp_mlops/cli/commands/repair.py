from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the tag changes; change nothing.")] = False,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Finish lifecycle entries a killed command left pending, then reconcile the `stage` tags to the aliases
    (the aliases are the truth); recorded in the ledger."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.repair import run_repair

        return run_repair(inv.ctx, dry_run=dry_run)

    def render(r):
        title = f"repair {r['model']}" + (" (dry run)" if r["dry_run"] else "")
        rows = [(f"pending {p['action']}", f"{p['resolution']}: {p['why']}") for p in r.get("pending", [])]
        rows += [(f"v{c['version']}", f"stage {c['from']} -> {c['to']} ({c['why']})") for c in r["changes"]]
        output.kv(title, rows or [("", "no drift: tags already follow the aliases")])

    run("repair", body, render, json_out=json, config=config, profile=profile, overrides=set_)
