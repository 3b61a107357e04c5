"""The lifecycle engine on the in-memory registry (milliseconds): plans, preconditions, lost races, and a crash at
every write step of `apply` for every kind of plan, each followed by `pfp status` and `pfp repair`.

The invariant after any crash: aliases, stage tags and the ledger agree, or `status` reports a pending entry and
`repair` makes them agree; the aliases end as the plan found them or as it meant to leave them, never in between;
the production history never counts an unfinished entry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pfp_mlops.adapters.memory_registry import CrashHere, MemoryRegistry
from pfp_mlops.domain.errors import ConcurrentPromotion
from pfp_mlops.domain.models import Decision
from pfp_mlops.domain.rollback_policy import tag_repairs
from pfp_mlops.domain.transitions import (
    Aliases,
    AliasMove,
    StoredPlan,
    plan_promote_production,
    plan_record,
    plan_reject,
    plan_repair,
    plan_rollback,
    plan_stage,
    resolve_pending,
)
from pfp_mlops.services import ledger, lifecycle
from pfp_mlops.services.context import Context
from pfp_mlops.services.repair import run_repair
from pfp_mlops.services.status import run_status

M = "pfp-detector"
N = Aliases()
OK = Decision("validate", True, ["better"])
NO = Decision("validate", False, ["worse"])


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """v1 production, v2 staging, v3 candidate; the ledger says v1 became production."""
    from pfp_mlops.settings import PipelineConfig, Settings

    monkeypatch.setenv("PFP_HOME", str(tmp_path / ".pfp"))
    monkeypatch.setattr("pfp_mlops.services.lifecycle.git_state", lambda: {})  # no git subprocess per write
    reg = MemoryRegistry(tmp_path / "reg")
    c = Context(Settings(_env_file=None), PipelineConfig(), registry_impl=reg)
    for _ in range(3):
        reg.register(M, str(tmp_path), None, {"stage": "candidate"})
    lifecycle.apply(c, plan_rollback(M, N, {}, 1, reason="first", forced=False))  # v1 production
    lifecycle.apply(c, plan_stage(M, N, reg.aliases(M), 2, decision=OK, metrics={}, extra={}))
    return c


def _state(ctx: Context) -> tuple[dict, dict]:
    reg = ctx.registry
    return reg.aliases(M), {v.version: v.stage for v in reg.versions(M)}


def agree(ctx: Context) -> bool:
    """Tags follow aliases, nothing is pending, and the ledger's last production is the production alias."""
    aliases, stages = _state(ctx)
    history = ledger.production_history(ctx)
    holders = {"production": aliases.get("production"), "staging": aliases.get("staging")}
    return (not tag_repairs(stages, holders) and not lifecycle.pending(ctx)
            and (aliases.get("production") is None or (history and history[-1] == aliases["production"])))


PLANS = {
    "stage": lambda h: plan_stage(M, N, h, 3, decision=OK, metrics={"map50": 0.5}, extra={}),
    "promote production": lambda h: plan_promote_production(M, N, challenger=2, champion=1, decision=OK,
                                                            metrics={}, extra={}),
    "reject": lambda h: plan_reject(M, N, challenger=2, champion=1, decision=NO, metrics={}, extra={}),
    "rollback": lambda h: plan_rollback(M, N, h, 2, reason="manual", forced=False),
    "regression rollback": lambda h: plan_rollback(M, N, h, 3, reason="regression: worse", forced=False,
                                                   event="regression"),
}


def test_plans_say_what_moves_and_what_is_only_checked():
    h = {"production": 1, "staging": 2}
    p = PLANS["promote production"](h)
    assert [(m.alias, m.expected, m.new) for m in p.writes] == [("production", 1, 2), ("staging", 2, None)]
    assert {t.version: t.tags["stage"] for t in p.tags} == {2: "production", 1: "archived"}
    r = PLANS["reject"](h)
    assert [m.alias for m in r.writes] == ["staging"] and [m.alias for m in r.moves if m.is_check] == ["production"]
    s = PLANS["stage"](h)
    assert {t.version: t.tags["stage"] for t in s.tags} == {2: "archived", 3: "staging"}
    rb = plan_rollback(M, N, {"production": 1, "staging": 2}, 2, reason="x", forced=True)
    assert [(m.alias, m.new) for m in rb.writes] == [("production", 2), ("staging", None)]
    assert rb.entry.extra["forced"] == "true"
    assert plan_repair(M, N, h, {1: "production", 2: "staging"}, 1) is None
    assert StoredPlan.parse(p.to_json()) == StoredPlan(p.moves, p.tags)
    assert StoredPlan.parse("{broken") is None
    with pytest.raises(ValueError):
        from pfp_mlops.domain.transitions import PlannedEntry, plan_transition

        plan_transition(M, PlannedEntry("x", "y"), moves=[AliasMove("a", 1, 2), AliasMove("a", 2, 3)])


@pytest.mark.parametrize(("holders", "verdict"), [
    ({"production": 1, "staging": 2}, "abort"),       # nothing moved yet
    ({"production": 2, "staging": 2}, "complete"),    # production moved, staging not yet
    ({"production": 2}, "complete"),                  # both moved, tags not yet
    ({"production": 2, "staging": 3}, "reverse"),     # someone moved staging since
    ({"production": 3, "staging": 2}, "reverse"),     # someone moved production since
])
def test_resolve_pending_is_decided_by_the_aliases(holders, verdict):
    plan = PLANS["promote production"]({"production": 1, "staging": 2})
    res = resolve_pending(StoredPlan(plan.moves, plan.tags), holders)
    assert res.verdict == verdict
    if verdict == "reverse" and holders["production"] == 2:
        assert [(m.alias, m.expected, m.new) for m in res.moves] == [("production", 2, 1)]
    if verdict == "complete":
        assert res.tags == plan.tags


def test_a_failed_precondition_writes_nothing(ctx):
    reg = ctx.registry
    before, writes = _state(ctx), reg.writes
    stale = plan_promote_production(M, N, challenger=2, champion=3, decision=OK, metrics={}, extra={})
    with pytest.raises(ConcurrentPromotion, match="nothing changed"):
        lifecycle.apply(ctx, stale)
    assert _state(ctx) == before and reg.writes == writes


def test_a_race_lost_after_the_first_move_puts_everything_back(ctx):
    """validate moved production, then finds staging moved by a promote: production goes back, no entry, exit 12."""
    reg = ctx.registry
    plan = PLANS["promote production"](reg.aliases(M))
    entries = len(reg.ledger(M))
    real = reg.move_alias

    def promote_sneaks_in(name, alias, version, *, expected):
        if alias == "staging" and expected == 2:
            real(name, "staging", 3, expected=2)  # the other process wins staging first
        return real(name, alias, version, expected=expected)

    reg.move_alias = promote_sneaks_in
    with pytest.raises(ConcurrentPromotion, match="nothing changed"):
        lifecycle.apply(ctx, plan)
    reg.move_alias = real
    assert reg.aliases(M) == {"production": 1, "staging": 3}
    assert len(reg.ledger(M)) == entries and not lifecycle.pending(ctx)
    assert reg.version(M, 1).stage == "production" and reg.version(M, 2).stage == "staging"


def _writes_of(ctx: Context, plan) -> int:
    """How many registry writes apply makes for this plan (counted on a copy of the state)."""
    reg = ctx.registry
    n0 = reg.writes
    import copy

    snapshot = copy.deepcopy((reg._models, reg._runs, reg._experiments))
    lifecycle.apply(ctx, plan)
    n = reg.writes - n0
    reg._models, reg._runs, reg._experiments = snapshot
    return n


@pytest.mark.parametrize("kind", list(PLANS))
def test_a_crash_at_every_write_step_is_reported_and_repaired(ctx, kind):
    reg = ctx.registry
    before = _state(ctx)
    plan = PLANS[kind](reg.aliases(M))
    total = _writes_of(ctx, plan)
    assert total >= 3
    import copy

    start = copy.deepcopy((reg._models, reg._runs, reg._experiments))
    after = None
    for k in range(total + 1):
        reg._models, reg._runs, reg._experiments = copy.deepcopy(start)
        reg.crash_after = reg.writes + k
        if k < total:
            with pytest.raises(CrashHere):
                lifecycle.apply(ctx, plan)
        else:
            lifecycle.apply(ctx, plan)
            after = _state(ctx)
        reg.crash_after = None
        history_while_crashed = ledger.production_history(ctx)
        if not agree(ctx):
            status = run_status(ctx)
            assert status["pending"] or status["drift"], (kind, k)
            assert len(history_while_crashed) == len(ledger.production_history(ctx))
            run_repair(ctx)
        assert agree(ctx), (kind, k, _state(ctx), lifecycle.pending(ctx))
        assert run_status(ctx)["pending"] == []
        final = _state(ctx)
        assert final[0] in (before[0], _final_aliases(plan, before[0])), (kind, k, final)
    assert after is not None and after[0] == _final_aliases(plan, before[0])


def _final_aliases(plan, start: dict) -> dict:
    out = dict(start)
    for m in plan.writes:
        if m.new is None:
            out.pop(m.alias, None)
        else:
            out[m.alias] = m.new
    return out


def test_rollback_reads_complete_entries_only(ctx):
    """A promotion killed after its pending entry is not a 'previous production' for `pfp rollback`."""
    reg = ctx.registry
    assert ledger.production_history(ctx) == [1]
    reg.crash_after = reg.writes + 1  # the pending entry lands, the first alias move does not
    with pytest.raises(CrashHere):
        lifecycle.apply(ctx, PLANS["promote production"](reg.aliases(M)))
    reg.crash_after = None
    assert lifecycle.pending(ctx) and ledger.production_history(ctx) == [1]
    out = run_repair(ctx)
    assert [p["resolution"] for p in out["pending"]] == ["abort"]
    assert reg.aliases(M) == {"production": 1, "staging": 2} and not reg.ledger(M)[-1]["action"] == "validate"


def test_records_are_complete_at_once_and_annotate_adds_to_them(ctx):
    rid = lifecycle.record(ctx, plan_record(M, "validate", "inconclusive", from_version=1, to_version=2,
                                            decision=NO, metrics={"delta": 0.01}))
    lifecycle.annotate(ctx, rid, {"serving": "confirmed"})
    e = ctx.registry.ledger(M)[-1]
    assert e["status"] == "complete" and e["outcome"] == "inconclusive" and e["serving"] == "confirmed"
    assert e["reasons"] == "worse" and e["passed"] == "false" and "plan" not in e


def test_only_the_lifecycle_engine_writes_aliases_stage_tags_and_the_ledger():
    """A grep over src/: move_alias, the ledger writers and `stage` tag writes appear in services/lifecycle.py
    only (and in the adapters that implement them)."""
    src = Path(__file__).resolve().parents[2] / "src" / "pfp_mlops"
    pattern = re.compile(r"\.(move_alias|append_ledger|finish_ledger)\(|set_tags\([^)]*[\"']stage[\"']")
    offenders = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel == "services/lifecycle.py" or rel.startswith("adapters/"):
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{rel}: {m.group(0)}" for m in pattern.finditer(text)]
    assert offenders == []


def test_a_pending_entry_blocks_other_changes_until_it_finishes(ctx):
    """While one command is mid-change (or died mid-change), another gets exit 12 naming `pfp repair`."""
    reg = ctx.registry
    reg.crash_after = reg.writes + 2  # pending entry + production moved, then killed
    with pytest.raises(CrashHere):
        lifecycle.apply(ctx, PLANS["promote production"](reg.aliases(M)))
    reg.crash_after = None
    before = _state(ctx)
    with pytest.raises(ConcurrentPromotion, match="pfp repair"):
        lifecycle.apply(ctx, plan_stage(M, N, reg.aliases(M), 3, decision=OK, metrics={}, extra={}))
    assert _state(ctx) == before
    run_repair(ctx)
    assert agree(ctx) and reg.aliases(M) == {"production": 2}
