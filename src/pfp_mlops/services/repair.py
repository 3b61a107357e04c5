"""`pfp repair`: reconcile the `stage` tags to the aliases (the aliases are the source of truth), in the ledger.

Drift comes from a command that died between moving an alias and tagging, or from someone moving an alias by
hand in the MLflow UI. Nothing but tags changes; a hand-moved production alias is recorded so that the ledger's
production history (which `pfp rollback` reads) stays true.
"""

from __future__ import annotations

from typing import Any

from pfp_mlops.domain.errors import NotFoundError
from pfp_mlops.services import ledger
from pfp_mlops.services.context import Context
from pfp_mlops.services.status import drift_of


def run_repair(ctx: Context, *, dry_run: bool = False) -> dict[str, Any]:
    reg, rc, name = ctx.registry, ctx.cfg.registry, ctx.model_name
    if not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    versions = reg.versions(name)
    fixes = drift_of(ctx, versions)
    changes = [{"version": v, "from": now, "to": want, "why": why} for v, now, want, why in fixes]
    result: dict[str, Any] = {"model": name, "dry_run": dry_run, "changes": changes, "ledger_run_id": None}
    if dry_run or not fixes:
        return result
    for v, _now, want, _why in fixes:
        reg.set_tags(name, v, {"stage": want})
    production = reg.alias_version(name, rc.production_alias)
    history = ledger.production_history(ctx)
    moved_by_hand = production is not None and (not history or history[-1] != production)
    summary = "; ".join(f"v{c['version']} {c['from']} -> {c['to']} ({c['why']})" for c in changes)
    result["ledger_run_id"] = ledger.record(
        ctx, "repair", from_version=history[-1] if moved_by_hand and history else None,
        to_version=production if moved_by_hand else None, outcome="repaired", extra={"changes": summary},
    )
    return result
