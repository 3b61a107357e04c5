from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def doctor(
    no_gpu: Annotated[bool, typer.Option("--no-gpu", help="Skip the GPU check (it imports torch, ~2 s).")] = False,
    config: ConfigOpt = None, set_: SetOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check this machine and its configured services: versions, runtime, MLflow, S3, DVC remote, GPU, offline.

    Exit 3 when a configured service (MLflow server, S3 endpoint, DVC remote) cannot be reached. Credentials are
    used, never printed.
    """
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.doctor import run_doctor

        return run_doctor(inv.ctx, check_gpu=not no_gpu)

    def render(r):
        output.table("pfp doctor", ("check", "status", "detail"), [(c.name, c.status, c.detail) for c in r.checks])

    run("doctor", body, render, json_out=json, config=config, profile=profile, result_code=lambda r: r.exit_code,
        overrides=set_)
