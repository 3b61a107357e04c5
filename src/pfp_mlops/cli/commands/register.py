from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def register(
    training_info: Annotated[Path | None, typer.Option("--training-info", help="Default: runs/training_info.json.")]
    = None,
    check_env: Annotated[bool, typer.Option("--check-env", help="Also predict in an isolated environment built from "
                                             "the model's own requirements (needs a package index).")] = False,
    env_manager: Annotated[str, typer.Option("--env-manager", help="For --check-env: uv, virtualenv or conda.")] = "uv",
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Evaluate on TEST, apply the minimum score, check production can load it, register a new version."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.register import run_register

        if env_manager not in ("uv", "virtualenv", "conda"):
            from pfp_mlops.domain.errors import UserError

            raise UserError(f"--env-manager must be uv, virtualenv or conda (got {env_manager!r})")
        return run_register(inv.ctx, training_info=training_info, check_env=env_manager if check_env else None)

    def render(r):
        if hasattr(r, "gate"):  # a refused Decision
            output.kv(f"register: refused ({r.gate})", [("reason", x) for x in r.reasons])
            return
        output.kv(f"registered {r.name} v{r.version}", [("test mAP50", r.evaluation.map50),
                                                         ("test mAP50-95", r.evaluation.map50_95),
                                                         ("model uri", r.model_uri),
                                                         *(("gate", x) for x in r.decision.reasons)])

    run("register", body, render, json_out=json, config=config, profile=profile, overrides=set_)
