"""`pfp promote`: staging requirements on the current TEST split → alias `staging` + tag stage=staging."""

from __future__ import annotations

from pfp_mlops.domain.errors import GateFailed, NotFoundError
from pfp_mlops.domain.gates import promote_gate
from pfp_mlops.domain.models import ModelVersionInfo, PromoteResult
from pfp_mlops.services import ledger
from pfp_mlops.services.context import Context
from pfp_mlops.services.evaluation import evaluate_version
from pfp_mlops.services.guards import leakage_guard, split_guard
from pfp_mlops.services.split import current_split


def latest_candidate(ctx: Context) -> ModelVersionInfo:
    versions = [v for v in ctx.registry.versions(ctx.model_name) if v.stage == "candidate"]
    if not versions:
        raise NotFoundError(f"no candidate version of {ctx.model_name}; run `pfp register` first")
    return versions[-1]


def run_promote(ctx: Context, *, version: int | None = None, allow_split_mismatch: bool = False) -> PromoteResult:
    reg, alias = ctx.registry, ctx.cfg.registry.staging_alias
    info = reg.version(ctx.model_name, version) if version is not None else latest_candidate(ctx)
    if info.stage in ("rejected",):
        raise GateFailed(f"{ctx.model_name} v{info.version} was rejected; register a new model")
    if info.tags.get("runtime_check", "passed") != "passed":
        raise GateFailed(f"{ctx.model_name} v{info.version} failed the runtime check "
                         f"({info.tags['runtime_check']}); register a model production can load")
    before = reg.alias_version(ctx.model_name, alias)
    manifest = current_split(ctx.cfg)
    try:
        guard_notes = split_guard(ctx, info, manifest, allow=allow_split_mismatch)
        if guard_notes:
            guard_notes += leakage_guard(ctx, [("challenger", info)], manifest)
    except GateFailed as e:
        ledger.record(ctx, "promote", from_version=before, to_version=info.version, outcome="refused_guard",
                      extra={"reason": e.message, "split_fingerprint": manifest.fingerprint})
        raise
    ev = evaluate_version(ctx, info, manifest)
    g = ctx.cfg.gates.promote
    decision = promote_gate(ev, min_map50=g.min_map50, min_recall=g.min_recall, min_class_ap50=g.min_class_ap50,
                            max_latency_ms=g.max_latency_ms)
    metrics = {"map50": ev.map50, "recall": ev.recall, "latency_ms": ev.latency_ms}
    extra = {"split_fingerprint": manifest.fingerprint, "allow_split_mismatch": str(allow_split_mismatch).lower(),
             **({"guard": " | ".join(guard_notes)} if guard_notes else {})}
    if not decision.passed:
        ledger.record(ctx, "promote", from_version=before, to_version=info.version, decision=decision,
                      outcome="refused", metrics=metrics, extra=extra)
        raise GateFailed(f"v{info.version} not promoted to {alias}: {'; '.join(decision.reasons)}", decision=decision)
    if before != info.version:
        reg.move_alias(ctx.model_name, alias, info.version, expected=before)
        production = reg.alias_version(ctx.model_name, ctx.cfg.registry.production_alias)
        if before is not None and before != production:
            reg.set_tags(ctx.model_name, before, {"stage": "archived"})
    reg.set_tags(ctx.model_name, info.version, {"stage": "staging"})
    ledger.record(ctx, "promote", from_version=before, to_version=info.version, decision=decision,
                  outcome="promoted", metrics=metrics, extra=extra)
    return PromoteResult(name=ctx.model_name, version=info.version, decision=decision, alias=alias)
