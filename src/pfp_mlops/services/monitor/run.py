"""`pfp monitor run`: cut the prediction log into windows per serving version, compute each closed window once.

A window is computed when it is closed (its time bucket has ended, or it holds N predictions) and either holds
`min_labelled` labelled images or has waited `label_wait` for them; windows of a version are computed in order, so a
window still waiting for labels holds back the later ones. For each: label-free drift signals against the version's
reference, labelled performance with the previous production shadow-scored, a verdict, the streaks. Each window goes
to MLflow (one step) and then to the state file. After the windows, `decide.py` acts on the current production's
streaks (rollback, alerts).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfp_mlops.domain import monitor_policy as policy
from pfp_mlops.domain.errors import RegressionRolledBack
from pfp_mlops.domain.models import Result
from pfp_mlops.domain.prediction_log import LoggedPrediction
from pfp_mlops.monitor_config import parse_window
from pfp_mlops.services.context import Context
from pfp_mlops.services.monitor import logs
from pfp_mlops.services.monitor import state as st
from pfp_mlops.services.monitor.performance import score_window
from pfp_mlops.services.monitor.reference import reference


@dataclass
class MonitorResult(Result):
    model: str
    production: int | None
    windows: list[dict[str, Any]] = field(default_factory=list)  # computed by this run
    waiting: list[dict[str, Any]] = field(default_factory=list)  # closed, waiting for labels / open
    adopted: int = 0  # windows found in MLflow but not in the state file (a run killed in between)
    log: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    unknown_versions: dict[str, int] = field(default_factory=dict)  # version → predictions skipped
    late: dict[str, int] = field(default_factory=dict)  # version → predictions for windows already computed
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None


def paths(ctx: Context, log_dir: Path | None = None, labels: Path | None = None) -> tuple[Path, Path, Path]:
    """(log dir, labels dir, labels CSV): the option, else PFP_PREDICTION_LOG_DIR, `monitor.log_dir`,
    `serve.prediction_log.dir`, `<PFP_HOME>/predictions` (where `pfp serve` writes by default)."""
    mc = ctx.cfg.monitor
    if log_dir is None:
        serve_dir = ctx.cfg.serve.prediction_log.dir
        log_dir = Path(ctx.settings.prediction_log_dir or mc.log_dir or serve_dir or ctx.home / "predictions")
    labels_dir = labels if labels is not None else Path(mc.labels_dir) if mc.labels_dir else log_dir / "labels"
    labels_csv = Path(mc.labels_csv) if mc.labels_csv else labels_dir / "labels.csv"
    return log_dir, labels_dir, labels_csv


class _Models:
    """Pyfunc models loaded once per command, by version."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.loaded: dict[int, Any] = {}

    def __call__(self, version: int) -> Any:
        if version not in self.loaded:
            from pfp_mlops.adapters.pyfunc_predict import PyfuncPredictor

            self.ctx.say(f"monitor: loading {self.ctx.model_name} v{version}")
            self.loaded[version] = PyfuncPredictor(f"models:/{self.ctx.model_name}/{version}")
        return self.loaded[version]


def previous_of(history: list[int], version: int) -> int | None:
    """The production version before `version` became production (the latest other one if it never was)."""
    idx = max((i for i, v in enumerate(history) if v == version), default=len(history))
    for v in reversed(history[:idx]):
        if v != version:
            return v
    return None


def run_monitor(ctx: Context, *, window: str | None = None, since: float | None = None,
                log_dir: Path | None = None, labels_dir: Path | None = None, serve_url: str | None = None,
                now: float | None = None) -> MonitorResult:
    from pfp_mlops.adapters.monitor_store import MonitorStore
    from pfp_mlops.services import ledger
    from pfp_mlops.services.monitor import decide

    mc, name, reg = ctx.cfg.monitor, ctx.model_name, ctx.registry
    kind, size = parse_window(window or mc.window)
    now = time.time() if now is None else now
    log_dir, s3 = logs.mirror_s3(ctx, log_dir)
    log_dir, lab_dir, lab_csv = paths(ctx, log_dir, labels_dir)
    with st.exclusive(ctx.home):
        read = logs.read_log(log_dir, model=name, since_ts=since)
        labels = logs.read_labels(lab_dir, lab_csv, n_classes=len(ctx.cfg.data.classes), predictions=read.predictions)
        known = {v.version: v for v in reg.versions(name)} if reg.model_exists(name) else {}
        production = reg.alias_version(name, ctx.cfg.registry.production_alias) if known else None
        history = ledger.production_history(ctx) if known else []
        log_report = {"dir": str(log_dir), **read.report(), **({"s3": s3} if s3 else {})}
        result = MonitorResult(name, production, log=log_report,
                               labels={"dir": str(lab_dir), **labels.report()})
        by_version: dict[int, list[LoggedPrediction]] = defaultdict(list)
        for p in read.predictions:
            by_version[p.version].append(p)
        state = st.load(ctx.home)
        store = MonitorStore(ctx.settings, mc.experiment)
        models = _Models(ctx)
        for version in sorted(by_version):
            if version not in known:
                result.unknown_versions[str(version)] = len(by_version[version])
                continue
            vs = st.version_state(state, name, version)
            run_id = vs.get("run_id") or store.run_for(name, version)
            vs["run_id"] = run_id
            result.adopted += _adopt(vs, store.logged_windows(run_id))
            st.save(ctx.home, state)
            prev = previous_of(history, version)
            if prev is not None and prev not in known:
                prev = None
            cands, late = _candidates(vs, by_version[version], kind, size, now)
            if late:
                result.late[str(version)] = late
            for cut, preds in cands:
                n_lab = sum(p.image_sha256 in labels.by_sha for p in preds)
                ready_at = cut.end + mc.label_wait_s()
                if n_lab < mc.min_labelled and now < ready_at:
                    result.waiting.append({"version": version, "window": cut.window_id, "predictions": len(preds),
                                           "labelled": n_lab, "ready_at": ready_at})
                    break  # windows are computed in order
                summary = _compute(ctx, store, run_id, vs, version, cut, preds, labels.by_sha, prev, models,
                                   log_dir, kind)
                st.save(ctx.home, state)
                result.windows.append(summary)
                result.alerts += decide.window_alerts(ctx, summary)
            if any(w["version"] == version for w in result.windows):
                decide.draw_series(ctx, store, run_id, version, vs)
        result.rollback, result.serving = decide.act(ctx, state, result, history, serve_url=serve_url)
        st.save(ctx.home, state)
    if result.rollback is not None:
        rb = result.rollback
        served = f"; server: {result.serving.get('message') or result.serving.get('ok')}" if result.serving else ""
        raise RegressionRolledBack(f"monitor: production v{rb['from_version']} failed {ctx.cfg.monitor.failure_limit} "
                                   f"consecutive windows; rolled back to v{rb['to_version']}{served}", result=result)
    return result


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`--since`: a duration ago (`2h`) or an ISO-8601 time (`2026-12-01T13:00:00Z`) → epoch seconds."""
    import datetime as dt

    from pfp_mlops.domain.errors import UserError
    from pfp_mlops.monitor_config import parse_duration

    if text is None:
        return None
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text, "--since")
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since must be a duration (2h) or an ISO time (2026-12-01T13:00:00Z), "
                        f"got {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def _adopt(vs: dict[str, Any], logged: dict[int, dict[str, Any]]) -> int:
    """Windows MLflow has (tag) and the state file lost: take them as computed, with their streaks and cursor."""
    n = 0
    while len(vs["windows"]) in logged:
        s = logged[len(vs["windows"])]
        vs["windows"].append(s)
        vs["fail_streak"], vs["inconclusive_streak"] = s.get("fail_streak", 0), s.get("inconclusive_streak", 0)
        if s.get("kind") == "count":
            vs["count_cursor"], vs["count_next"] = s.get("cursor"), int(s.get("count_number", 0)) + 1
        n += 1
    return n


def _candidates(vs: dict[str, Any], preds: list[LoggedPrediction], kind: str, size: float,
                now: float) -> tuple[list[tuple[policy.WindowCut, list[LoggedPrediction]]], int]:
    """Closed windows of this version not computed yet, in order, and how many predictions arrived too late: they
    belong to a window already computed (windows are computed once), so they are counted, not used."""
    if kind == "count":
        cursor = tuple(vs["count_cursor"]) if vs["count_cursor"] else None
        rest = [p for p in preds if cursor is None or tuple(p.key) > cursor]
        used = sum(w["predictions"] for w in vs["windows"] if w.get("kind") == "count")
        late = max(len(preds) - len(rest) - used, 0)
        cuts = policy.count_windows([p.ts for p in rest], int(size), first_number=vs["count_next"])
        return [(c, [rest[i] for i in c.indexes]) for c in cuts], late
    done = {w["window"]: w["predictions"] for w in vs["windows"]}
    last_start = max((w["start"] for w in vs["windows"] if w.get("kind") == "time"), default=None)
    out, late = [], 0
    for c in policy.time_windows([p.ts for p in preds], size):
        if c.window_id in done:
            late += max(len(c.indexes) - done[c.window_id], 0)
        elif last_start is not None and c.start <= last_start:
            late += len(c.indexes)
        elif c.end <= now:
            out.append((c, [preds[i] for i in c.indexes]))
    return out, late


def _compute(ctx: Context, store: Any, run_id: str, vs: dict[str, Any], version: int, cut: policy.WindowCut,
             preds: list[LoggedPrediction], labels: dict[str, Any], prev: int | None, models: _Models,
             log_dir: Path, kind: str) -> dict[str, Any]:
    from pfp_mlops.domain.drift import histograms, score_signals

    mc, classes = ctx.cfg.monitor, list(ctx.cfg.data.classes)
    step = len(vs["windows"])
    ref = reference(ctx, version, models, store, run_id)
    signals = [] if ref is None else score_signals(
        histograms(preds, classes), ref["histograms"], threshold=mc.drift.threshold,
        thresholds=mc.drift.thresholds, min_samples=mc.drift.min_samples)
    perf = score_window(preds, labels, n_classes=len(classes), log_dir=log_dir, previous_version=prev,
                        previous_predictor=models, min_labelled=mc.min_labelled, resamples=mc.bootstrap_resamples,
                        seed=mc.bootstrap_seed, confidence=mc.confidence, shadow_batch=mc.shadow_batch,
                        stored_image=logs.stored_image)
    ci = (perf.delta_ci_low, perf.delta_ci_high) if perf.delta_ci_low is not None else None
    verdict, why = policy.window_verdict(perf.n_scored, min_labelled=mc.min_labelled, ci=ci, drop=mc.drop,
                                         has_previous=prev is not None)
    fails, incs = policy.next_streaks(vs["fail_streak"], vs["inconclusive_streak"], verdict)
    vs["fail_streak"], vs["inconclusive_streak"] = fails, incs
    drift_alerts = [s.name for s in signals if s.alert]
    summary: dict[str, Any] = {
        "version": version, "step": step, "window": cut.window_id, "kind": kind, "start": cut.start, "end": cut.end,
        "predictions": len(preds), "labelled": perf.n_labelled, "scored": perf.n_scored, "verdict": verdict,
        "reason": why, "fail_streak": fails, "inconclusive_streak": incs, "previous_version": prev,
        "map50": perf.map50, "previous_map50": perf.previous_map50, "delta_map50": perf.delta_map50,
        "delta_ci": list(ci) if ci else None, "drift_alerts": drift_alerts, "computed_at": time.time(),
        "drift": {s.name: round(s.score, 6) for s in signals if s.score is not None},
    }
    if kind == "count":
        summary["cursor"], summary["count_number"] = list(preds[-1].key), int(cut.window_id[1:])
    metrics = {**perf.metrics(), "predictions": float(len(preds)), "fail_streak": float(fails),
               "inconclusive_streak": float(incs), "drift_alerts": float(len(drift_alerts)),
               "verdict_code": {"pass": 0.0, "inconclusive": 1.0, "fail": 2.0}[verdict],
               "empty_rate": sum(not p.boxes for p in preds) / len(preds) if preds else 0.0}
    metrics.update({f"drift.{s.name}": s.score for s in signals if s.score is not None})
    details = {**summary, "signals": [s.to_dict() for s in signals], "performance": perf.__dict__,
               "reference": None if ref is None else {k: ref[k] for k in ("n_images", "split_fingerprint",
                                                                          "version_split_fingerprint")},
               "images_missing": perf.images_missing, "unknown_class_boxes": perf.unknown_class_boxes}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{step:04d}-{cut.window_id}.json"
        path.write_text(json.dumps(details, indent=1, default=str), encoding="utf-8")
        store.log_window(run_id, step, metrics, summary, path)
    vs["windows"].append(summary)
    if kind == "count":
        vs["count_cursor"], vs["count_next"] = summary["cursor"], summary["count_number"] + 1
    ctx.say(f"monitor: v{version} window {cut.window_id} (step {step}): {verdict} — {why}")
    return summary
