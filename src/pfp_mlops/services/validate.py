"""`pfp validate`: champion (production) vs challenger (staging) on the SAME current test split.

Promote → alias `production` moves to the challenger (compare-and-set), the old champion is archived.
Reject  → the challenger leaves staging, tagged `rejected`, exit 10. No staging model → nothing to do, exit 0.
"""

from __future__ import annotations

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain.errors import GateFailed, NotFoundError
from pfp_mlops.domain.models import ModelVersionInfo, SplitManifest, ValidateResult
from pfp_mlops.services import ledger
from pfp_mlops.services.context import Context
from pfp_mlops.services.decision import decide
from pfp_mlops.services.evaluation import evaluate_version
from pfp_mlops.services.guards import leakage_guard, split_guard
from pfp_mlops.services.split import current_split


def run_validate(ctx: Context, *, allow_split_mismatch: bool = False) -> ValidateResult:
    reg, rc = ctx.registry, ctx.cfg.registry
    name = ctx.model_name
    if not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    challenger_v = reg.alias_version(name, rc.staging_alias)
    champion_v = reg.alias_version(name, rc.production_alias)
    if challenger_v is None:
        from pfp_mlops.domain.models import Decision

        d = Decision("validate", True, [f"no version holds alias {rc.staging_alias!r}: nothing to validate"])
        return ValidateResult(name, None, champion_v, d, "nothing", production=champion_v)
    manifest = current_split(ctx.cfg)
    challenger = reg.version(name, challenger_v)
    guard_notes = _guards(ctx, challenger, champion_v, manifest, allow_split_mismatch)
    extra = {"split_fingerprint": manifest.fingerprint, "allow_split_mismatch": str(allow_split_mismatch).lower(),
             **({"guard": " | ".join(guard_notes)} if guard_notes else {})}
    c_eval = evaluate_version(ctx, challenger, manifest)
    p_eval = None
    if champion_v is not None and champion_v != challenger_v:
        p_eval = evaluate_version(ctx, reg.version(name, champion_v), manifest)
    g = ctx.cfg.gates.validate_
    decision = decide(ctx, challenger_version=challenger_v, champion_version=champion_v if p_eval else None,
                      challenger_eval=c_eval, champion_eval=p_eval, manifest=manifest, ledger_extra=extra)
    metrics = {"challenger_" + g.metric: c_eval.metric(g.metric)}
    if p_eval is not None:
        metrics["champion_" + g.metric] = p_eval.metric(g.metric)
    for side, ev in (("challenger", c_eval), ("champion", p_eval)):  # both sides in the ledger
        for k in ("map50", "map50_95", "precision", "recall") if ev is not None else ():
            metrics[f"{side}_{k}"] = getattr(ev, k)
    if decision.passed:
        reg.move_alias(name, rc.production_alias, challenger_v, expected=champion_v)
        reg.move_alias(name, rc.staging_alias, None, expected=challenger_v)
        reg.set_tags(name, challenger_v, {"stage": "production"})
        if champion_v is not None and champion_v != challenger_v:
            reg.set_tags(name, champion_v, {"stage": "archived"})
        ledger.record(ctx, "validate", from_version=champion_v, to_version=challenger_v, decision=decision,
                      outcome="promoted", metrics=metrics, extra=extra)
        return ValidateResult(name, challenger_v, champion_v, decision, "promoted", c_eval, p_eval,
                              production=challenger_v)
    reg.move_alias(name, rc.staging_alias, None, expected=challenger_v)
    reg.set_tags(name, challenger_v, {"stage": "rejected", "rejected_reasons": " | ".join(decision.reasons)})
    ledger.record(ctx, "validate", from_version=champion_v, to_version=challenger_v, decision=decision,
                  outcome="rejected", metrics=metrics, extra=extra)
    alert = send_alert(
        {"event": "rejection", "model": name, "challenger": challenger_v, "champion": champion_v,
         "reasons": decision.reasons,
         "summary": f"pfp: {name} challenger v{challenger_v} rejected: {'; '.join(decision.reasons)}"},
        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url,
    )
    ctx.say(f"alert: webhook {alert['webhook']}")
    result = ValidateResult(name, challenger_v, champion_v, decision, "rejected", c_eval, p_eval,
                            production=champion_v)
    raise GateFailed(f"challenger v{challenger_v} rejected: {'; '.join(decision.reasons)}", decision=result)


def _guards(ctx: Context, challenger: ModelVersionInfo, champion_v: int | None, manifest: SplitManifest,
            allow_split_mismatch: bool) -> list[str]:
    """Same-split guard on the challenger, leakage check on both sides; a refusal is recorded, nothing moves."""
    compared = [("challenger", challenger)]
    if champion_v is not None and champion_v != challenger.version:
        compared.append(("champion", ctx.registry.version(ctx.model_name, champion_v)))
    try:
        notes = split_guard(ctx, challenger, manifest, allow=allow_split_mismatch)
        return notes + leakage_guard(ctx, compared, manifest)
    except GateFailed as e:
        ledger.record(ctx, "validate", from_version=champion_v, to_version=challenger.version,
                      outcome="refused_guard",
                      extra={"reason": e.message, "split_fingerprint": manifest.fingerprint})
        raise
