"""The lifecycle engine: the one writer of aliases, `stage` tags and ledger entries.

`apply(ctx, plan)` executes a plan from `domain.transitions` in one fixed order:

1. refuse while another entry of the model is pending (a command mid-change, or one that died: `pfp repair`),
   then read the aliases (one read) and check each against the holder the plan expects; a mismatch raises
   ConcurrentPromotion (exit 12) before anything is written;
2. append the ledger entry as *pending*, carrying the plan;
3. move the aliases, each by compare-and-set; losing one (another process moved it between 1 and 3) moves the
   ones already moved back, deletes the entry (aborted) and raises ConcurrentPromotion: nothing changed;
4. set the tags;
5. mark the entry *complete*.

A process killed anywhere in 2–5 leaves a pending entry: `pfp status` lists it, `pfp repair` finishes it with
`resolve(ctx, entry)` (complete, reverse or abort, decided by `domain.transitions.resolve_pending`), and readers of
the production history count complete entries only. A plan without alias moves or tags (a record) is appended
complete at once.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from pfp_mlops.domain.errors import ConcurrentPromotion, UserError
from pfp_mlops.domain.transitions import Aliases, AliasMove, Plan, Resolution, StoredPlan, resolve_pending
from pfp_mlops.ports import entry_status
from pfp_mlops.services.context import Context, git_state, who

PLAN_KEY = "plan"
# Test hook (tests/integration/test_lifecycle_crash.py): SIGKILL this process right after write step N of apply
# (1 = the pending entry, then each alias move, each version's tags, the completion). Never set in production.
KILL_AFTER_WRITE_ENV = "PFP_TEST_KILL_AFTER_WRITE"


def names(ctx: Context) -> Aliases:
    """The configured alias names, for the planners."""
    rc = ctx.cfg.registry
    return Aliases(staging=rc.staging_alias, production=rc.production_alias)


def entry_fields(ctx: Context, plan: Plan) -> dict[str, Any]:
    """The ledger entry as written: the plan's fields plus who, when, the git state and the plan itself."""
    return {
        **plan.entry.fields(plan.model),
        "who": who(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seq": f"{time.time_ns()}",
        **git_state(),
        **({PLAN_KEY: plan.to_json()} if plan.moves or plan.tags else {}),
        "metrics": plan.entry.metrics or {},
    }


def apply(ctx: Context, plan: Plan) -> str:
    """Execute a plan (see the module docstring); returns the ledger entry's run id."""
    reg, name = ctx.registry, plan.model
    entry = entry_fields(ctx, plan)
    if not plan.moves and not plan.tags:
        return reg.append_ledger(entry)
    busy = pending(ctx)
    if busy:
        e = busy[-1]
        raise ConcurrentPromotion(
            f"another lifecycle command is changing {name} ({e.get('action')} v{e.get('from_version') or '-'} -> "
            f"v{e.get('to_version') or '-'} since {e.get('when')}, entry {e['run_id']}); nothing changed: run again "
            f"when it has finished, or `pfp repair` if it died")
    holders = reg.aliases(name)
    for m in plan.moves:
        if holders.get(m.alias) != m.expected:
            raise ConcurrentPromotion(
                f"alias {m.alias!r} of {name} moved to {holders.get(m.alias)} since the decision (expected "
                f"{m.expected}); nothing changed, run again")
    steps = _Steps()
    run_id = reg.append_ledger(entry, status="pending")
    steps.done()
    moved: list[AliasMove] = []
    try:
        for m in plan.writes:
            reg.move_alias(name, m.alias, m.new, expected=m.expected)
            moved.append(m)
            steps.done()
    except ConcurrentPromotion as lost:
        _undo(ctx, name, moved, run_id, lost)
        raise
    for t in plan.tags:
        reg.set_tags(name, t.version, t.tags)
        steps.done()
    reg.finish_ledger(run_id, "complete")
    steps.done()
    return run_id


def record(ctx: Context, plan: Plan) -> str:
    """A plan that only records (refusals, verdicts): the same engine, named for the reader."""
    return apply(ctx, plan)


def _undo(ctx: Context, name: str, moved: list[AliasMove], run_id: str, lost: ConcurrentPromotion) -> None:
    """A move lost its race: put back what this plan moved, then drop the entry. If even that fails, the entry stays
    pending for `pfp repair` and the message says so."""
    reg = ctx.registry
    try:
        for m in reversed(moved):
            reg.move_alias(name, m.alias, m.expected, expected=m.new)
    except ConcurrentPromotion:
        raise ConcurrentPromotion(f"{lost.message.removesuffix('; nothing changed, run again')}; the aliases this "
                                  f"command had moved could not be put back: entry {run_id} is left pending, run "
                                  f"`pfp repair`") from None
    reg.finish_ledger(run_id, "aborted")


class _Steps:
    """Counts apply's writes for the crash test hook."""

    def __init__(self) -> None:
        raw = os.environ.get(KILL_AFTER_WRITE_ENV, "")
        self.kill_after = int(raw) if raw.isdigit() else None
        self.n = 0

    def done(self) -> None:
        self.n += 1
        if self.kill_after == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


# --- pending entries ----------------------------------------------------------------------------------------------


def pending(ctx: Context) -> list[dict[str, Any]]:
    """The ledger entries a crash left pending, oldest first."""
    return [e for e in ctx.registry.ledger(ctx.model_name, status="pending") if entry_status(e) == "pending"]


def plan_of(entry: dict[str, Any]) -> StoredPlan | None:
    return StoredPlan.parse(entry.get(PLAN_KEY))


def resolution(ctx: Context, entry: dict[str, Any]) -> Resolution:
    return resolve_pending(plan_of(entry), ctx.registry.aliases(ctx.model_name))


def resolve(ctx: Context, entry: dict[str, Any], res: Resolution) -> None:
    """Finish one pending entry as `res` says: moves (compare-and-set), tags, then the entry complete or aborted."""
    reg, name = ctx.registry, ctx.model_name
    for m in res.moves:
        reg.move_alias(name, m.alias, m.new, expected=m.expected)
    for t in res.tags:
        reg.set_tags(name, t.version, t.tags)
    reg.finish_ledger(entry["run_id"], "complete" if res.verdict == "complete" else "aborted")


def annotate(ctx: Context, ledger_run_id: str, tags: dict[str, str]) -> None:
    """Add facts to a finished entry (e.g. the serving confirmation of a promotion)."""
    if not ledger_run_id:
        raise UserError("annotate needs the ledger entry's run id")
    ctx.registry.annotate_ledger(ledger_run_id, tags)
