"""`pfp history`: the lifecycle ledger, newest first."""

from __future__ import annotations

from typing import Any

from pfp_mlops.domain.errors import UserError
from pfp_mlops.services.context import Context


def run_history(ctx: Context, *, limit: int = 20) -> list[dict[str, Any]]:
    if limit < 1:
        raise UserError(f"--limit must be a positive integer (got {limit})")
    entries = ctx.registry.ledger(ctx.model_name, limit=limit)
    return list(reversed(entries))[:limit]
