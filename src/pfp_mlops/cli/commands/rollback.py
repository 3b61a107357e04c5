from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, ServeUrlOpt, SetOpt


def rollback(
    to_version: Annotated[str | None, typer.Option("--to-version", help="Version to restore (default: previous "
                                                                         "production, from the ledger).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow a rejected version.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the ledger and the alert.")] = "manual rollback",
    serve_url: ServeUrlOpt = None,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Put the previous (or a chosen) production version back; tags, ledger entry and alert."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.cli import serving_note
        from pfp_mlops.services.rollback import parse_version, run_rollback
        from pfp_mlops.services.serving import check_url

        check_url(serve_url)
        r = run_rollback(inv.ctx, to_version=parse_version(to_version, "--to-version"), dry_run=dry_run,
                         force=force, reason=reason)
        if r.dry_run:
            return r
        return serving_note.confirm(inv, r, serve_url=serve_url, version=r.to_version,
                                    alias=inv.ctx.cfg.registry.production_alias)

    def render(r):
        title = f"rollback {r.name}: v{r.from_version} -> v{r.to_version}" + (" (dry run)" if r.dry_run else "")
        output.kv(title, [*(("reason", x) for x in r.reasons), *(("alert " + k, v) for k, v in r.alert.items())])
        from pfp_mlops.cli import serving_note

        serving_note.render(r)

    run("rollback", body, render, json_out=json, config=config, profile=profile, overrides=set_)
