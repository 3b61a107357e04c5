"""Lifecycle transitions, planned purely: every alias move, stage tag and ledger entry is computed here first.

A `Plan` says, for each alias it touches, the holder it expects and the holder it sets (`AliasMove`; a move whose
new holder equals the expected one is a *check*: the alias must still hold that version, nothing is written); the
tag changes per version; and the ledger entry. `services.lifecycle.apply` executes any plan the same way:
check every alias → ledger entry *pending* → alias moves (compare-and-set) → tags → entry *complete*. The plan is
stored in the pending entry, so `resolve_pending` can decide, from that entry and the aliases alone, how to finish
a plan a crash left half-applied.

The planners are all of one shape: (registry state the decision was made on, the decision) → Plan. Later writers
(the server, the monitor) build theirs with `plan_transition` or reuse `plan_rollback`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.domain.models import Decision, Result
from pfp_mlops.domain.rollback_policy import tag_repairs

REASONS_MAX = 2000  # tag values in a plan stay short: the plan travels inside one ledger tag


@dataclass(frozen=True)
class Aliases:
    """The configured alias names (registry.staging_alias / registry.production_alias)."""

    staging: str = "staging"
    production: str = "production"


@dataclass(frozen=True)
class AliasMove:
    alias: str
    expected: int | None
    new: int | None

    @property
    def is_check(self) -> bool:
        """A precondition only: the alias must still point at `expected`; nothing is written."""
        return self.expected == self.new


@dataclass(frozen=True)
class TagChange:
    version: int
    tags: dict[str, str]


@dataclass(frozen=True)
class PlannedEntry:
    """The ledger entry of a plan (who/when/git are added when it is applied)."""

    action: str
    outcome: str
    from_version: int | None = None
    to_version: int | None = None
    decision: Decision | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self, model: str) -> dict[str, Any]:
        d = self.decision
        return {"action": self.action, "model": model, "from_version": self.from_version,
                "to_version": self.to_version, "outcome": self.outcome,
                "passed": None if d is None else str(d.passed).lower(),
                "reasons": None if d is None else " | ".join(d.reasons), **self.extra}


@dataclass(frozen=True)
class Plan(Result):
    model: str
    moves: tuple[AliasMove, ...]
    tags: tuple[TagChange, ...]
    entry: PlannedEntry

    @property
    def writes(self) -> tuple[AliasMove, ...]:
        """The alias moves that write (checks left out)."""
        return tuple(m for m in self.moves if not m.is_check)

    def to_json(self) -> str:
        """The part of the plan repair needs (moves and tags), as stored in the pending ledger entry."""
        return json.dumps({"moves": [[m.alias, m.expected, m.new] for m in self.moves],
                           "tags": [[t.version, t.tags] for t in self.tags]}, separators=(",", ":"))

    def describe(self) -> list[str]:
        """One line per write, for --dry-run output and messages."""
        lines = [f"{m.alias}: {_v(m.expected)} -> {_v(m.new)}" for m in self.writes]
        lines += [f"v{t.version}: " + ", ".join(f"{k}={v}" for k, v in t.tags.items()) for t in self.tags]
        return lines


def _v(v: int | None) -> str:
    return "none" if v is None else f"v{v}"


@dataclass(frozen=True)
class StoredPlan:
    """A plan read back from a pending ledger entry."""

    moves: tuple[AliasMove, ...]
    tags: tuple[TagChange, ...]

    @classmethod
    def parse(cls, raw: str | None) -> StoredPlan | None:
        """None when the entry has no readable plan (then repair can only abort it)."""
        try:
            data = json.loads(raw or "")
            moves = tuple(AliasMove(str(a), _opt_int(e), _opt_int(n)) for a, e, n in data["moves"])
            tags = tuple(TagChange(int(v), {str(k): str(x) for k, x in t.items()}) for v, t in data["tags"])
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        return cls(moves, tags)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


# --- the planners -------------------------------------------------------------------------------------------------


def plan_transition(model: str, entry: PlannedEntry, *, moves: Sequence[AliasMove] = (),
                    tags: Mapping[int, Mapping[str, str]] | None = None) -> Plan:
    """The generic shape: any set of alias moves/checks, tag changes and one ledger entry."""
    aliases = [m.alias for m in moves]
    if len(set(aliases)) != len(aliases):
        raise ValueError(f"a plan moves each alias once (got {aliases})")
    return Plan(model, tuple(moves), tuple(TagChange(v, dict(t)) for v, t in (tags or {}).items() if t), entry)


def plan_record(model: str, action: str, outcome: str, **entry: Any) -> Plan:
    """Only a ledger entry: refusals, an inconclusive verdict, a registration, the regression watch's decision."""
    return plan_transition(model, PlannedEntry(action, outcome, **entry))


def plan_stage(model: str, names: Aliases, holders: Mapping[str, int | None], version: int, *,
               decision: Decision, metrics: dict[str, Any], extra: dict[str, Any]) -> Plan:
    """`pfp promote`: `version` takes the staging alias; the version it displaces is archived unless it is the
    production model (so production must still be that one: a check)."""
    before, production = holders.get(names.staging), holders.get(names.production)
    moves: list[AliasMove] = []
    tags: dict[int, dict[str, str]] = {}
    if before != version:
        moves.append(AliasMove(names.staging, before, version))
        if before is not None:
            moves.append(AliasMove(names.production, production, production))
            if before != production:
                tags[before] = {"stage": "archived"}
    tags[version] = {"stage": "staging"}
    return plan_transition(model, PlannedEntry("promote", "promoted", before, version, decision, metrics, extra),
                           moves=moves, tags=tags)


def plan_promote_production(model: str, names: Aliases, *, challenger: int, champion: int | None,
                            decision: Decision, metrics: dict[str, Any], extra: dict[str, Any]) -> Plan:
    """`pfp validate` promotes: production champion → challenger, staging challenger → none, tags follow."""
    tags = {challenger: {"stage": "production"}}
    if champion is not None and champion != challenger:
        tags[champion] = {"stage": "archived"}
    moves = [AliasMove(names.staging, challenger, None)]
    if champion != challenger:
        moves.insert(0, AliasMove(names.production, champion, challenger))
    return plan_transition(model, PlannedEntry("validate", "promoted", champion, challenger, decision, metrics, extra),
                           moves=moves, tags=tags)


def plan_reject(model: str, names: Aliases, *, challenger: int, champion: int | None, decision: Decision,
                metrics: dict[str, Any], extra: dict[str, Any]) -> Plan:
    """`pfp validate` rejects: the challenger leaves staging, tagged rejected with the reasons. It was judged
    against `champion`, so production must still be that one."""
    reasons = " | ".join(decision.reasons)[:REASONS_MAX]
    return plan_transition(
        model, PlannedEntry("validate", "rejected", champion, challenger, decision, metrics, extra),
        moves=[AliasMove(names.staging, challenger, None), AliasMove(names.production, champion, champion)],
        tags={challenger: {"stage": "rejected", "rejected_reasons": reasons}})


def plan_rollback(model: str, names: Aliases, holders: Mapping[str, int | None], target: int, *, reason: str,
                  forced: bool, event: str = "rollback") -> Plan:
    """`pfp rollback`, the regression watch (`event="regression"`) and the monitor (`event="monitor"`): production
    current → target; the demoted version is tagged rolled_back; a target that held staging leaves it."""
    current, staging = holders.get(names.production), holders.get(names.staging)
    moves = [AliasMove(names.production, current, target)]
    if staging == target:
        moves.append(AliasMove(names.staging, staging, None))
    tags = {target: {"stage": "production"}}
    if current is not None:
        tags[current] = {"stage": "rolled_back", "rolled_back_reason": reason[:REASONS_MAX]}
    extra = {"reason": reason, "forced": str(forced).lower(), "event": event}
    return plan_transition(model, PlannedEntry("rollback", "rolled_back", current, target, extra=extra),
                           moves=moves, tags=tags)


def plan_repair(model: str, names: Aliases, holders: Mapping[str, int | None], stages: Mapping[int, str | None],
                last_production: int | None) -> Plan | None:
    """`pfp repair`: the stage tags follow the aliases (the aliases are the truth). A production alias moved by
    hand (not the last production in the ledger) is recorded as a production change, so `pfp rollback` reads a
    true history. None when there is nothing to repair."""
    fixes = tag_repairs(stages, {"production": holders.get(names.production), "staging": holders.get(names.staging)})
    if not fixes:
        return None
    production = holders.get(names.production)
    by_hand = production is not None and last_production != production
    summary = "; ".join(f"v{v} {now} -> {want} ({why})" for v, now, want, why in fixes)
    entry = PlannedEntry("repair", "repaired", last_production if by_hand else None, production if by_hand else None,
                         extra={"changes": summary})
    checks = [AliasMove(a, holders.get(a), holders.get(a)) for a in (names.production, names.staging)]
    return plan_transition(model, entry, moves=checks, tags={v: {"stage": want} for v, _now, want, _why in fixes})


# --- finishing a plan a crash interrupted ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """How repair finishes a pending entry: `complete` (do the remaining moves, then every tag), `reverse` (move
    back what was moved), or `abort` (nothing was moved: nothing to undo). `moves` are the writes still to do."""

    verdict: str
    moves: tuple[AliasMove, ...]
    tags: tuple[TagChange, ...]
    why: str


def resolve_pending(plan: StoredPlan | None, holders: Mapping[str, int | None]) -> Resolution:
    """Deterministic, from the stored plan and the current aliases only.

    Each writing move is *new* (the alias holds the planned holder), *old* (still the expected one) or *other*
    (someone else moved it since). Any *other*: the plan cannot be finished as decided, so the aliases it did move
    go back to the holders it found (reverse). All *old*: the crash came before the first move (abort). Otherwise
    (new and old only): the decision stands, the remaining moves and every tag are done (complete). Checks are not
    looked at: they were preconditions, verified before the first write.
    """
    if plan is None:
        return Resolution("abort", (), (), "the entry holds no readable plan")
    writes = [m for m in plan.moves if not m.is_check]
    state = {m.alias: ("new" if holders.get(m.alias) == m.new else "old" if holders.get(m.alias) == m.expected
                       else "other") for m in writes}
    others = [a for a, s in state.items() if s == "other"]
    if others:
        back = tuple(AliasMove(m.alias, m.new, m.expected) for m in writes if state[m.alias] == "new")
        return Resolution("reverse", back, (), f"alias {', '.join(others)} was moved by someone else since")
    if writes and all(s == "old" for s in state.values()):
        return Resolution("abort", (), (), "no alias had moved yet")
    todo = tuple(m for m in writes if state[m.alias] == "old")
    return Resolution("complete", todo, plan.tags, "the decision stands: finishing its remaining writes")
