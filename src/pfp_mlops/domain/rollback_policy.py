"""Which version a rollback goes to, decided from the production history (the ledger)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def check_target(target: int, current: int | None, stage: str | None, *, force: bool,
                 runtime_check: str | None = "passed") -> list[str]:
    """Pre-flight reasons; raises UserError when the target is not acceptable.

    A `rejected` version, or one that failed (or never passed) the runtime check, needs `force`.
    """
    if current is not None and target == current:
        raise UserError(f"version {target} is already in production")
    problems = []
    if stage in ("rejected",):
        problems.append(f"is tagged {stage}")
    if runtime_check != "passed":
        problems.append(f"did not pass the runtime check ({runtime_check or 'never run'})")
    if problems and not force:
        raise UserError(f"version {target} {' and '.join(problems)}; use --force to roll back to it anyway")
    reasons = [f"production {current} -> {target}" if current is not None else f"production -> {target}"]
    reasons += [f"forced: version {target} {p}" for p in problems]
    return reasons


def tag_repairs(stages: Mapping[int, str | None], holders: Mapping[str, int | None]) -> list[tuple[int, str | None,
                                                                                                     str, str]]:
    """The alias decides, the `stage` tag follows: (version, tag now, tag it should have, why) for each drift.

    `holders` maps a stage name ("production", "staging") to the version holding that stage's alias (or None).
    A version tagged production/staging without the alias becomes archived/candidate.
    """
    out = []
    prod, stag = holders.get("production"), holders.get("staging")
    for v, stage in sorted(stages.items()):
        if v == prod:
            want, why = "production", "holds the production alias"
        elif v == stag:
            want, why = "staging", "holds the staging alias"
        elif stage == "production":
            want, why = "archived", "tagged production but holds no production alias"
        elif stage == "staging":
            want, why = "candidate", "tagged staging but holds no staging alias"
        else:
            continue
        if stage != want:
            out.append((v, stage, want, why))
    return out
