"""The lifecycle ledger: every register, promote, validate decision, rollback and repair, as MLflow runs."""

from __future__ import annotations

import time
from typing import Any

from pfp_mlops.domain.models import Decision
from pfp_mlops.services.context import Context, git_state, who

PRODUCTION_ACTIONS = ("validate", "rollback", "repair")


def record(ctx: Context, action: str, *, from_version: int | None = None, to_version: int | None = None,
           decision: Decision | None = None, outcome: str | None = None, metrics: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None) -> str:
    """Append one entry; returns the ledger run id."""
    entry: dict[str, Any] = {
        "action": action,
        "model": ctx.model_name,
        "from_version": from_version,
        "to_version": to_version,
        "outcome": outcome,
        "passed": None if decision is None else str(decision.passed).lower(),
        "reasons": None if decision is None else " | ".join(decision.reasons),
        "who": who(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seq": f"{time.time_ns()}",
        **git_state(),
        **(extra or {}),
        "metrics": metrics or {},
    }
    run_id = ctx.registry.append_ledger(entry)
    ctx.extra["ledger_run_id"] = run_id  # until results carry ledger_run_id (CONTRACTS §1): the last entry written
    return run_id


def annotate(ctx: Context, ledger_run_id: str, tags: dict[str, str]) -> None:
    """Add facts to a finished entry (e.g. the serving confirmation). Minimal stand-in for
    `services.lifecycle.annotate` (CONTRACTS §1) until the lifecycle core lands."""
    ctx.registry.annotate_ledger(ledger_run_id, tags)


def production_history(ctx: Context) -> list[int]:
    """Versions that became production, oldest first, read from the ledger."""
    out = []
    for e in ctx.registry.ledger(ctx.model_name):
        if e.get("action") in PRODUCTION_ACTIONS and e.get("outcome") in ("promoted", "rolled_back", "repaired") \
                and e.get("to_version"):
            try:
                out.append(int(e["to_version"]))
            except ValueError:
                continue
    return out
