from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, DemoOpt, JsonOpt, ProfileOpt, SetOpt

_STEPS = "split, train, register, promote, validate"


def run_all(
    demo: DemoOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Rerun every selected step, even if unchanged.")] = False,
    from_step: Annotated[str | None, typer.Option("--from", metavar="STEP",
                                                  help=f"Rerun from STEP ({_STEPS}); earlier ones don't run.")] = None,
    until_step: Annotated[str | None, typer.Option("--until", metavar="STEP",
                                                   help="Stop after STEP; later steps are not run.")] = None,
    wait: Annotated[float, typer.Option("--wait", metavar="SECONDS", min=0,
                                        help="How long to wait for another run-all of this project to finish.")] = 10.0,
    config: ConfigOpt = None, set_: SetOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """The whole chain: split → train → register → promote → validate, skipping steps whose inputs are unchanged."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.errors import exit_code_for
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.pipeline import STEPS, Selection
        from pfp_mlops.services.pipeline import run_all as service

        sel = Selection(first=from_step or STEPS[0], last=until_step or STEPS[-1], force=force,
                        rerun_first=from_step is not None)
        if not json:
            inv.ctx.progress = lambda msg: output.console().print(msg)
        return service(inv.ctx, demo=demo, exit_code_of=exit_code_for, selection=sel, wait_s=wait)

    def render(r):
        output.table(f"run-all ({r.duration_s:.1f}s)", ("step", "status", "seconds", "result"),
                     [(s.step, s.status, s.duration_s, s.summary) for s in r.steps])

    run("run-all", body, render, json_out=json, config=config, profile=profile, demo=demo,
        result_code=lambda r: r.exit_code, overrides=set_)
