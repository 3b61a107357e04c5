"""`pfp validate --against previous`: the regression watch.

Production and the previous production (from the ledger) are evaluated on the CURRENT test split with the one
protocol; when production is worse beyond the tolerance, production is rolled back to the previous version
(pre-flight, compare-and-set, tags, ledger, alert) and the command exits 13.
"""

from __future__ import annotations

from pfp_mlops.domain.errors import Inconclusive, NotFoundError, RegressionRolledBack
from pfp_mlops.domain.gates import regression_check
from pfp_mlops.domain.models import Decision, RegressionResult
from pfp_mlops.domain.rollback_policy import previous_production
from pfp_mlops.domain.transitions import plan_record
from pfp_mlops.services import ledger, lifecycle
from pfp_mlops.services.context import Context
from pfp_mlops.services.evaluation import evaluate_version
from pfp_mlops.services.guards import leakage_guard
from pfp_mlops.services.rollback import run_rollback
from pfp_mlops.services.split import current_split


def run_regression_watch(ctx: Context, *, tolerance: float = 0.0) -> RegressionResult:
    reg, rc, name = ctx.registry, ctx.cfg.registry, ctx.model_name
    current = reg.alias_version(name, rc.production_alias) if reg.model_exists(name) else None
    if current is None:
        d = Decision("regression", False, [f"no version holds alias {rc.production_alias!r}: nothing to watch"],
                     verdict="keep")
        return RegressionResult(name, None, None, d, "nothing")
    try:
        previous = previous_production(ledger.production_history(ctx), current)
    except NotFoundError:
        d = Decision("regression", False, [f"v{current} is the only production version so far: nothing to compare"],
                     verdict="keep")
        return RegressionResult(name, current, None, d, "nothing")
    manifest = current_split(ctx.cfg)
    prod_info, prev_info = reg.version(name, current), reg.version(name, previous)
    notes = leakage_guard(ctx, [("production", prod_info), ("previous production", prev_info)], manifest)
    p_eval = evaluate_version(ctx, prod_info, manifest)
    q_eval = evaluate_version(ctx, prev_info, manifest)
    metric = ctx.cfg.gates.validate_.metric
    decision = regression_check(p_eval, q_eval, metric=metric, tolerance=tolerance)
    metrics = {f"production_{metric}": p_eval.metric(metric), f"previous_{metric}": q_eval.metric(metric)}
    extra = {"mode": "against_previous", "split_fingerprint": manifest.fingerprint, "tolerance": tolerance,
             **({"guard": " | ".join(notes)} if notes else {})}
    outcome = {"rollback": "regression", "keep": "kept"}.get(decision.verdict or "", "inconclusive")
    entry = lifecycle.record(ctx, plan_record(name, "validate", outcome, from_version=current, to_version=previous,
                                              decision=decision, metrics=metrics, extra=extra))
    if decision.verdict == "inconclusive":
        result = RegressionResult(name, current, previous, decision, "nothing", p_eval, q_eval, ledger_run_id=entry)
        raise Inconclusive(f"regression watch: {'; '.join(decision.reasons)}", decision=result)
    if not decision.passed:
        return RegressionResult(name, current, previous, decision, "kept", p_eval, q_eval, ledger_run_id=entry)
    why = f"regression: {decision.reasons[0]}"
    rb = run_rollback(ctx, to_version=previous, reason=why, expected_current=current, event="regression")
    result = RegressionResult(name, current, previous, decision, "rolled_back", p_eval, q_eval, rb,
                              ledger_run_id=rb.ledger_run_id)
    raise RegressionRolledBack(f"production v{current} regressed ({decision.reasons[0]}); rolled back to "
                               f"v{previous}; alert webhook: {rb.alert.get('webhook')}", result=result)
