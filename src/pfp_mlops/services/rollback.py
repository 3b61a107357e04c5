"""`pfp rollback`: production back to the previous (from the ledger) or a named version; tags, ledger, alert."""

from __future__ import annotations

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain.errors import NotFoundError, UserError
from pfp_mlops.domain.models import RollbackResult
from pfp_mlops.domain.rollback_policy import check_target, previous_production
from pfp_mlops.services import ledger
from pfp_mlops.services.context import Context
from pfp_mlops.services.evaluation import weights_for_version


def run_rollback(ctx: Context, *, to_version: int | None = None, dry_run: bool = False, force: bool = False,
                 reason: str = "manual rollback") -> RollbackResult:
    reg, rc, name = ctx.registry, ctx.cfg.registry, ctx.model_name
    if not reg.model_exists(name):
        raise NotFoundError(f"registered model {name!r} not found")
    current = reg.alias_version(name, rc.production_alias)
    target = to_version if to_version is not None else previous_production(ledger.production_history(ctx), current)
    info = reg.version(name, target)
    reasons = check_target(target, current, info.stage, force=force)
    weights_for_version(ctx, info)  # pre-flight: the artifacts are there and downloadable
    if dry_run:
        return RollbackResult(name, current, target, True, ["dry run: nothing changed", *reasons])
    reg.move_alias(name, rc.production_alias, target, expected=current)
    reg.set_tags(name, target, {"stage": "production"})
    if current is not None:
        reg.set_tags(name, current, {"stage": "rolled_back"})
    staging = reg.alias_version(name, rc.staging_alias)
    if staging == target:
        reg.move_alias(name, rc.staging_alias, None, expected=staging)
    ledger.record(ctx, "rollback", from_version=current, to_version=target, outcome="rolled_back",
                  extra={"reason": reason})
    alert = send_alert(
        {"event": "rollback", "model": name, "from_version": current, "to_version": target, "reason": reason,
         "summary": f"pfp: {name} production rolled back from v{current} to v{target} ({reason})"},
        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url,
    )
    return RollbackResult(name, current, target, False, reasons, alert)


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
