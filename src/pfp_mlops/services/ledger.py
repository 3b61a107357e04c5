"""Reading the lifecycle ledger (writing it is `services.lifecycle`'s alone): the production history."""

from __future__ import annotations

from pfp_mlops.ports import entry_status
from pfp_mlops.services.context import Context

PRODUCTION_ACTIONS = ("validate", "rollback", "repair")


def production_history(ctx: Context) -> list[int]:
    """Versions that became production, oldest first. Complete entries only: a pending one (a command killed
    half-way) has not made anything production yet as far as `pfp rollback` is concerned."""
    out = []
    for e in ctx.registry.ledger(ctx.model_name):
        if entry_status(e) != "complete":
            continue
        if e.get("action") in PRODUCTION_ACTIONS and e.get("outcome") in ("promoted", "rolled_back", "repaired") \
                and e.get("to_version"):
            try:
                out.append(int(e["to_version"]))
            except ValueError:
                continue
    return out
