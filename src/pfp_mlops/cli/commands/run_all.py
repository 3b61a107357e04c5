from __future__ import annotations

from pfp_mlops.cli.options import ConfigOpt, DemoOpt, JsonOpt, ProfileOpt


def run_all(demo: DemoOpt = False, config: ConfigOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """The whole chain: split → train → register → promote → validate, with a summary table."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.errors import exit_code_for
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.pipeline import run_all as service

        if not json:
            inv.ctx.progress = lambda msg: output.console().print(msg)
        return service(inv.ctx, demo=demo, exit_code_of=exit_code_for)

    def render(r):
        output.table(f"run-all ({r.duration_s:.1f}s)", ("step", "status", "seconds", "result"),
                     [(s.step, s.status, s.duration_s, s.summary) for s in r.steps])

    run("run-all", body, render, json_out=json, config=config, profile=profile, demo=demo,
        result_code=lambda r: r.exit_code)
