"""Reusable option types (Annotated aliases), shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Pipeline YAML (default: PFP_CONFIG or configs/<profile>.yaml).")
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Config profile: default, demo, … (PFP_PROFILE).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (errors too).")]
DemoOpt = Annotated[
    bool, typer.Option("--demo", help="Use the demo profile; generate the synthetic dataset if missing.")
]
AllowSplitMismatchOpt = Annotated[
    bool, typer.Option("--allow-split-mismatch", help="Accept a model trained on another split (in the ledger).")
]
ServeUrlOpt = Annotated[
    str | None, typer.Option("--serve-url", help="A `pfp serve` to confirm: after the alias moved, trigger its "
                                                 "reload and wait until it serves the new version (PFP_SERVE_URL).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE",
                 help="Override one config key for this run (repeatable; dotted keys, YAML values), "
                      "e.g. --set train.epochs=3 --set gates.validate.mode=absolute."),
]
