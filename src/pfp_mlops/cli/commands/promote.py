from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import AllowSplitMismatchOpt, ConfigOpt, JsonOpt, ProfileOpt, ServeUrlOpt, SetOpt


def promote(
    version: Annotated[str | None, typer.Option("--version", help="Version to stage (default: latest candidate).")]
    = None,
    allow_split_mismatch: AllowSplitMismatchOpt = False,
    serve_url: ServeUrlOpt = None,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Move a version to staging (alias + stage tag) when it meets the staging thresholds."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.cli import serving_note
        from pfp_mlops.services.promote import run_promote
        from pfp_mlops.services.rollback import parse_version
        from pfp_mlops.services.serving import check_url

        check_url(serve_url)
        r = run_promote(inv.ctx, version=parse_version(version, "--version"),
                        allow_split_mismatch=allow_split_mismatch)
        return serving_note.confirm(inv, r, serve_url=serve_url, version=r.version, alias=r.alias)

    def render(r):
        if hasattr(r, "gate"):
            output.kv(f"promote: refused ({r.gate})", [("reason", x) for x in r.reasons])
            return
        output.kv(f"{r.name} v{r.version} -> {r.alias}", [("gate", x) for x in r.decision.reasons])
        from pfp_mlops.cli import serving_note

        serving_note.render(r)

    run("promote", body, render, json_out=json, config=config, profile=profile, overrides=set_)
