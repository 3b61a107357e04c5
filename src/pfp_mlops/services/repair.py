"""`pfp repair`: finish what a killed command left pending, then make the `stage` tags follow the aliases.

1. Every *pending* ledger entry (a command killed inside `lifecycle.apply`) is finished from the plan it carries:
   completed, reversed or aborted, as `domain.transitions.resolve_pending` decides from the aliases alone.
2. Tags that disagree with the aliases (the aliases are the source of truth: someone moved one by hand in the
   MLflow UI, or a command older than the lifecycle engine died half-way) are set by a repair plan; a hand-moved
   production alias is recorded so that the ledger's production history (which `pfp rollback` reads) stays true.
"""

from __future__ import annotations

from typing import Any

from pfp_mlops.domain.errors import NotFoundError
from pfp_mlops.domain.transitions import plan_repair
from pfp_mlops.services import ledger, lifecycle
from pfp_mlops.services.context import Context
from pfp_mlops.services.status import drift_of


def run_repair(ctx: Context, *, dry_run: bool = False) -> dict[str, Any]:
    reg, name = ctx.registry, ctx.model_name
    if not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    finished = []
    for e in lifecycle.pending(ctx):
        res = lifecycle.resolution(ctx, e)
        finished.append({"run_id": e["run_id"], "action": e.get("action"), "from_version": e.get("from_version"),
                         "to_version": e.get("to_version"), "resolution": res.verdict, "why": res.why,
                         "writes": [f"{m.alias}: {m.expected} -> {m.new}" for m in res.moves]})
        if not dry_run:
            lifecycle.resolve(ctx, e, res)
    versions = reg.versions(name)
    fixes = drift_of(ctx, versions)
    changes = [{"version": v, "from": now, "to": want, "why": why} for v, now, want, why in fixes]
    result: dict[str, Any] = {"model": name, "dry_run": dry_run, "changes": changes, "pending": finished,
                              "ledger_run_id": None}
    if dry_run or not fixes:
        return result
    history = ledger.production_history(ctx)
    holders = {a: v.version for v in versions for a in v.aliases}
    plan = plan_repair(name, lifecycle.names(ctx), holders, {v.version: v.stage for v in versions},
                       history[-1] if history else None)
    if plan is not None:
        result["ledger_run_id"] = lifecycle.apply(ctx, plan)
    return result
