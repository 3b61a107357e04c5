"""`pfp validate`: champion (production) vs challenger (staging) on the SAME current test split.

Promote → alias `production` moves to the challenger, staging is cleared, the old champion is archived.
Reject  → the challenger leaves staging, tagged `rejected`, exit 10. No staging model → nothing to do, exit 0.
Both are one plan (`domain.transitions`) applied by `services.lifecycle.apply`: if either alias moved since the
decision, nothing changes and the command exits 12. Each side is read once and evaluated once.
"""

from __future__ import annotations

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain.errors import GateFailed, NotFoundError
from pfp_mlops.domain.models import Decision, ModelVersionInfo, SplitManifest, ValidateResult
from pfp_mlops.domain.transitions import plan_promote_production, plan_record, plan_reject
from pfp_mlops.services import lifecycle
from pfp_mlops.services.context import Context
from pfp_mlops.services.decision import decide
from pfp_mlops.services.evaluation import evaluate
from pfp_mlops.services.guards import leakage_guard, split_guard
from pfp_mlops.services.split import current_split


def run_validate(ctx: Context, *, allow_split_mismatch: bool = False) -> ValidateResult:
    reg, names, name = ctx.registry, lifecycle.names(ctx), ctx.model_name
    holders = reg.aliases(name)  # one read: {} for an unknown model, then one more to tell which it is
    if not holders and not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    challenger_v, champion_v = holders.get(names.staging), holders.get(names.production)
    if challenger_v is None:
        d = Decision("validate", True, [f"no version holds alias {names.staging!r}: nothing to validate"])
        return ValidateResult(name, None, champion_v, d, "nothing", production=champion_v)
    manifest = current_split(ctx.cfg)
    challenger = reg.version(name, challenger_v)
    champion = reg.version(name, champion_v) if champion_v is not None and champion_v != challenger_v else None
    guard_notes = _guards(ctx, challenger, champion, champion_v, manifest, allow_split_mismatch)
    extra = {"split_fingerprint": manifest.fingerprint, "allow_split_mismatch": str(allow_split_mismatch).lower(),
             **({"guard": " | ".join(guard_notes)} if guard_notes else {})}
    c = evaluate(ctx, challenger, manifest)
    p = evaluate(ctx, champion, manifest) if champion is not None else None
    c_eval, p_eval = c.result, (p.result if p is not None else None)
    g = ctx.cfg.gates.validate_
    decision = decide(ctx, challenger_version=challenger_v, champion_version=champion_v if p_eval else None,
                      challenger_eval=c_eval, champion_eval=p_eval, manifest=manifest, ledger_extra=extra,
                      challenger_records=c, champion_records=p)
    metrics = {"challenger_" + g.metric: c_eval.metric(g.metric)}
    if p_eval is not None:
        metrics["champion_" + g.metric] = p_eval.metric(g.metric)
    for side, ev in (("challenger", c_eval), ("champion", p_eval)):  # both sides in the ledger
        for k in ("map50", "map50_95", "precision", "recall") if ev is not None else ():
            metrics[f"{side}_{k}"] = getattr(ev, k)
    if decision.passed:
        entry = lifecycle.apply(ctx, plan_promote_production(name, names, challenger=challenger_v, champion=champion_v,
                                                             decision=decision, metrics=metrics, extra=extra))
        return ValidateResult(name, challenger_v, champion_v, decision, "promoted", c_eval, p_eval,
                              production=challenger_v, ledger_run_id=entry)
    entry = lifecycle.apply(ctx, plan_reject(name, names, challenger=challenger_v, champion=champion_v,
                                             decision=decision, metrics=metrics, extra=extra))
    alert = send_alert(
        {"event": "rejection", "model": name, "challenger": challenger_v, "champion": champion_v,
         "reasons": decision.reasons,
         "summary": f"pfp: {name} challenger v{challenger_v} rejected: {'; '.join(decision.reasons)}"},
        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url,
    )
    ctx.say(f"alert: webhook {alert['webhook']}")
    result = ValidateResult(name, challenger_v, champion_v, decision, "rejected", c_eval, p_eval,
                            production=champion_v, ledger_run_id=entry)
    raise GateFailed(f"challenger v{challenger_v} rejected: {'; '.join(decision.reasons)}", decision=result)


def _guards(ctx: Context, challenger: ModelVersionInfo, champion: ModelVersionInfo | None, champion_v: int | None,
            manifest: SplitManifest, allow_split_mismatch: bool) -> list[str]:
    """Same-split guard on the challenger, leakage check on both sides; a refusal is recorded, nothing moves."""
    compared = [("challenger", challenger)] + ([("champion", champion)] if champion is not None else [])
    try:
        notes = split_guard(ctx, challenger, manifest, allow=allow_split_mismatch)
        return notes + leakage_guard(ctx, compared, manifest)
    except GateFailed as e:
        lifecycle.record(ctx, plan_record(ctx.model_name, "validate", "refused_guard", from_version=champion_v,
                                          to_version=challenger.version,
                                          extra={"reason": e.message, "split_fingerprint": manifest.fingerprint}))
        raise
