from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt


def register(
    training_info: Annotated[Path | None, typer.Option("--training-info", help="Default: runs/training_info.json.")]
    = None,
    config: ConfigOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Evaluate on TEST, apply the minimum score, check production can load it, register a new version."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.register import run_register

        return run_register(inv.ctx, training_info=training_info)

    def render(r):
        if hasattr(r, "gate"):  # a refused Decision
            output.kv(f"register: refused ({r.gate})", [("reason", x) for x in r.reasons])
            return
        output.kv(f"registered {r.name} v{r.version}", [("test mAP50", r.evaluation.map50),
                                                         ("test mAP50-95", r.evaluation.map50_95),
                                                         ("model uri", r.model_uri), *(("gate", x) for x in r.decision.reasons)])

    run("register", body, render, json_out=json, config=config, profile=profile)
