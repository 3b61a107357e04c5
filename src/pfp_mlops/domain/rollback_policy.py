"""Which version a rollback goes to, decided from the production history (the ledger)."""

from __future__ import annotations

from collections.abc import Sequence

from pfp_mlops.domain.errors import NotFoundError, UserError


def previous_production(history: Sequence[int], current: int | None) -> int:
    """The production version before the current one.

    `history` lists the versions that became production, oldest first (repeats allowed: a version can come back).
    We walk back from the latest entry and return the first version that is not the current one.
    """
    for v in reversed(history):
        if v != current:
            return v
    raise NotFoundError("no previous production version to roll back to (the ledger has no earlier one)")


def check_target(target: int, current: int | None, stage: str | None, *, force: bool) -> list[str]:
    """Pre-flight reasons; raises UserError when the target is not acceptable."""
    if current is not None and target == current:
        raise UserError(f"version {target} is already in production")
    if stage in ("rejected",) and not force:
        raise UserError(f"version {target} is tagged {stage}; use --force to roll back to it anyway")
    reasons = [f"production {current} -> {target}" if current is not None else f"production -> {target}"]
    if stage in ("rejected",):
        reasons.append(f"forced: version {target} was {stage}")
    return reasons
