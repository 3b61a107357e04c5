"""What the monitor does with its verdicts: alerts per window, the series picture, and the rollback on fail.

The rollback goes through `services.rollback.run_rollback` (CONTRACTS §1: the lifecycle engine writes aliases, tags
and the ledger), with `expected_current` = the failing version, so a production someone moved meanwhile is left
alone (exit 12). It is decided from the state's streaks, not from the window that completed them: a run killed
between its last window and the rollback rolls back on the next run.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain import monitor_policy as policy
from pfp_mlops.services.context import Context

log = logging.getLogger("pfp.monitor")


def _alert(ctx: Context, event: str, summary: str, **fields: Any) -> dict[str, Any]:
    status = send_alert({"event": event, "model": ctx.model_name, "summary": summary, **fields},
                        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url)
    return {"event": event, "summary": summary, **fields, "delivery": status}


def window_alerts(ctx: Context, w: dict[str, Any]) -> list[dict[str, Any]]:
    """Drift signals over their threshold (alert only, never a rollback) and a run of inconclusive windows."""
    mc, out = ctx.cfg.monitor, []
    if w["drift_alerts"]:
        out.append(_alert(ctx, "monitor_drift", f"pfp: {ctx.model_name} v{w['version']} window {w['window']}: "
                                                f"drift in {', '.join(w['drift_alerts'])}",
                          version=w["version"], window=w["window"], signals=w["drift_alerts"]))
    n = w["inconclusive_streak"]
    if n and n % mc.inconclusive_limit == 0:
        out.append(_alert(ctx, "monitor_inconclusive",
                          f"pfp: {ctx.model_name} v{w['version']}: {n} inconclusive windows in a row "
                          f"({w['reason']})", version=w["version"], window=w["window"]))
    return out


def act(ctx: Context, state: dict[str, Any], result: Any, history: list[int], *,
        serve_url: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Roll production back when its own windows failed `failure_limit` times in a row (the streak then restarts)."""
    from pfp_mlops.services.monitor.run import previous_of
    from pfp_mlops.services.rollback import run_rollback

    mc, current = ctx.cfg.monitor, result.production
    vs = state["models"].get(ctx.model_name, {}).get(str(current)) if current is not None else None
    if not vs or not vs["windows"]:
        return None, None
    verdict = policy.action(vs["fail_streak"], vs["inconclusive_streak"], failure_limit=mc.failure_limit,
                            inconclusive_limit=mc.inconclusive_limit)
    if verdict != "rollback":
        return None, None
    last = vs["windows"][-1]
    prev = previous_of(history, current)
    if prev is None:
        result.alerts.append(_alert(ctx, "monitor_fail", f"pfp: {ctx.model_name} v{current} failed "
                                                         f"{vs['fail_streak']} windows; no previous version"))
        return None, None
    reason = (f"monitor: v{current} failed {vs['fail_streak']} consecutive windows (last {last['window']}: "
              f"{last['reason']})")
    if mc.decide == "alert":
        result.alerts.append(_alert(ctx, "monitor_fail", f"pfp: {reason} (monitor.decide: alert, no rollback)"))
        return None, None
    rb = run_rollback(ctx, to_version=prev, reason=reason, expected_current=current, event="monitor")
    # The run of fails is spent: should this version serve again later, it takes failure_limit new failing windows.
    vs["rolled_back"], vs["fail_streak"] = True, 0
    from pfp_mlops.services.monitor import state as st

    st.save(ctx.home, state)
    serving = confirm(ctx, serve_url, prev, getattr(rb, "ledger_run_id", None) or ctx.extra.get("ledger_run_id"))
    return rb.to_dict(), serving


def confirm(ctx: Context, url: str | None, version: int, ledger_run_id: str | None) -> dict[str, Any] | None:
    """CONTRACTS §2, as promote/validate/rollback do: when a server is configured (`--serve-url` or PFP_SERVE_URL),
    make it reload and wait until it serves `version`; the outcome annotates the rollback's ledger entry. A server
    that does not follow is a warning in the result, never an error: the registry change stands."""
    from pfp_mlops.services.serving import confirm_after_move

    return confirm_after_move(ctx, serve_url=url, version=version, alias=ctx.cfg.registry.production_alias,
                              ledger_run_id=ledger_run_id)


def draw_series(ctx: Context, store: Any, run_id: str, version: int, vs: dict[str, Any]) -> None:
    """Redraw `series.png` of the version's run from the window summaries (a picture failing never blocks)."""
    try:
        from pfp_mlops.adapters.monitor_plots import series_png

        ws = vs["windows"]
        perf = {k: [w.get(k) for w in ws] for k in ("map50", "previous_map50", "delta_map50")}
        perf["delta_ci_low"] = [(w.get("delta_ci") or [None, None])[0] for w in ws]
        perf["delta_ci_high"] = [(w.get("delta_ci") or [None, None])[1] for w in ws]
        names = sorted({k for w in ws for k in (w.get("drift") or {})})
        drift = {n: [(w.get("drift") or {}).get(n) for w in ws] for n in names}
        with tempfile.TemporaryDirectory() as tmp:
            path = series_png(Path(tmp) / "series.png", steps=[w["step"] for w in ws], performance=perf,
                              drift=drift, verdicts=[w["verdict"] for w in ws],
                              drift_threshold=ctx.cfg.monitor.drift.threshold,
                              title=f"{ctx.model_name} v{version}: monitoring windows")
            store.log_file(run_id, path)
    except Exception as e:  # noqa: BLE001 - the metrics and details are logged already
        log.warning("monitor series picture not drawn: %s: %s", type(e).__name__, str(e)[:200])
