"""`pfp rollback`: production back to the previous (from the ledger) or a named version; tags, ledger, alert."""

from __future__ import annotations

from pathlib import Path

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain.errors import ConcurrentPromotion, GateFailed, NotFoundError, UserError
from pfp_mlops.domain.models import RollbackResult
from pfp_mlops.domain.rollback_policy import check_target, previous_production
from pfp_mlops.domain.transitions import plan_rollback
from pfp_mlops.services import ledger, lifecycle
from pfp_mlops.services.context import Context
from pfp_mlops.services.evaluation import weights_for_version
from pfp_mlops.services.split import read_manifest


def run_rollback(ctx: Context, *, to_version: int | None = None, dry_run: bool = False, force: bool = False,
                 reason: str = "manual rollback", expected_current: int | None = None,
                 event: str = "rollback") -> RollbackResult:
    """Pre-flight (exists, artifacts present, loads in a fresh process, not rejected/failing unless forced), then
    move the alias (compare-and-set), tag, ledger, alert. `expected_current`: the production version a caller
    decided on (the regression watch); a different one means someone else moved it (exit 12)."""
    from pfp_mlops.adapters import packaging

    reg, names, name = ctx.registry, lifecycle.names(ctx), ctx.model_name
    if not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    holders = reg.aliases(name)
    current = holders.get(names.production)
    if expected_current is not None and current != expected_current:
        raise ConcurrentPromotion(f"production of {name} moved to {current} since the decision (expected "
                                  f"{expected_current}); nothing changed")
    target = to_version if to_version is not None else previous_production(ledger.production_history(ctx), current)
    info = reg.version(name, target)
    reasons = check_target(target, current, info.stage, force=force,
                           runtime_check=info.tags.get("runtime_check"))
    weights_for_version(ctx, info)  # pre-flight: the artifacts are there and downloadable
    try:
        check = packaging.fresh_process_check(f"models:/{name}/{target}", _sample_image(ctx))
    except GateFailed as e:
        if not force:
            raise UserError(f"version {target} fails the pre-flight load ({e.message}); use --force to roll back "
                            f"to it anyway") from None
        reasons.append(f"forced: version {target} fails the pre-flight load")
    else:
        reasons.append(f"pre-flight: v{target} loads and predicts in a fresh process ({check.get('seconds')}s)")
    plan = plan_rollback(name, names, holders, target, reason=reason, forced=force, event=event)
    if dry_run:
        return RollbackResult(name, current, target, True, ["dry run: nothing changed", *reasons,
                                                            *(f"would set {x}" for x in plan.describe())])
    entry = lifecycle.apply(ctx, plan)
    alert = send_alert(
        {"event": event, "model": name, "from_version": current, "to_version": target, "reason": reason,
         "summary": f"pfp: {name} production rolled back from v{current} to v{target} ({reason})"},
        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url,
    )
    return RollbackResult(name, current, target, False, reasons, alert, ledger_run_id=entry)


def _sample_image(ctx: Context) -> Path | None:
    """One current test image for the pre-flight prediction; None (load only) when there is no split."""
    manifest = read_manifest(ctx.cfg.paths.dataset_dir)
    if manifest is None:
        return None
    test_list = manifest.list_file("test")
    if not test_list.is_file():
        return None
    first = next((ln.strip() for ln in test_list.read_text().splitlines() if ln.strip()), None)
    return Path(first) if first and Path(first).is_file() else None


def parse_version(raw: str | None, option: str = "--to-version") -> int | None:
    """A version given on the command line: a positive integer, nothing else (no URIs, no aliases)."""
    if raw is None:
        return None
    try:
        v = int(raw.strip())
    except ValueError:
        raise UserError(f"{option} must be a positive integer (got {raw!r})") from None
    if v < 1:
        raise UserError(f"{option} must be a positive integer (got {raw!r})")
    return v
