"""`pfp promote`: staging requirements on the current TEST split → alias `staging` + tag stage=staging."""

from __future__ import annotations

from pfp_mlops.domain.errors import GateFailed, NotFoundError
from pfp_mlops.domain.gates import promote_gate
from pfp_mlops.domain.models import ModelVersionInfo, PromoteResult
from pfp_mlops.domain.transitions import plan_record, plan_stage
from pfp_mlops.services import lifecycle
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
    reg, names, name = ctx.registry, lifecycle.names(ctx), ctx.model_name
    info = reg.version(name, version) if version is not None else latest_candidate(ctx)
    if info.stage in ("rejected",):
        raise GateFailed(f"{name} v{info.version} was rejected; register a new model")
    if info.tags.get("runtime_check", "passed") != "passed":
        raise GateFailed(f"{name} v{info.version} failed the runtime check "
                         f"({info.tags['runtime_check']}); register a model production can load")
    holders = reg.aliases(name)  # the state this decision is made on; apply checks it again before writing
    before = holders.get(names.staging)
    manifest = current_split(ctx.cfg)
    try:
        guard_notes = split_guard(ctx, info, manifest, allow=allow_split_mismatch)
        if guard_notes:
            guard_notes += leakage_guard(ctx, [("challenger", info)], manifest)
    except GateFailed as e:
        lifecycle.record(ctx, plan_record(name, "promote", "refused_guard", from_version=before,
                                          to_version=info.version,
                                          extra={"reason": e.message, "split_fingerprint": manifest.fingerprint}))
        raise
    ev = evaluate_version(ctx, info, manifest)
    g = ctx.cfg.gates.promote
    decision = promote_gate(ev, min_map50=g.min_map50, min_recall=g.min_recall, min_class_ap50=g.min_class_ap50,
                            max_latency_ms=g.max_latency_ms)
    metrics = {"map50": ev.map50, "recall": ev.recall, "latency_ms": ev.latency_ms}
    extra = {"split_fingerprint": manifest.fingerprint, "allow_split_mismatch": str(allow_split_mismatch).lower(),
             **({"guard": " | ".join(guard_notes)} if guard_notes else {})}
    if not decision.passed:
        lifecycle.record(ctx, plan_record(name, "promote", "refused", from_version=before, to_version=info.version,
                                          decision=decision, metrics=metrics, extra=extra))
        raise GateFailed(f"v{info.version} not promoted to {names.staging}: {'; '.join(decision.reasons)}",
                         decision=decision)
    entry = lifecycle.apply(ctx, plan_stage(name, names, holders, info.version, decision=decision, metrics=metrics,
                                            extra=extra))
    return PromoteResult(name=name, version=info.version, decision=decision, alias=names.staging,
                         ledger_run_id=entry)
