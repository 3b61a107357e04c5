"""The promotion decision of `pfp validate` with its evidence; the rule itself is `domain.promotion_rule.judge`.

The service pairs both models' per-image records, runs the paired bootstrap (the same resample for both models,
`gates.validate.bootstrap_resamples`, `bootstrap_seed`) and asks the pure rule. Inconclusive changes nothing, is
recorded in the ledger and raises `Inconclusive` (exit 11). The evidence (a PNG, the decision as JSON, both models'
per-image records) is logged to one run of the `<lifecycle experiment>-evaluations` experiment; the ledger entry
carries its run id.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfp_mlops.domain.errors import ConfigError, Inconclusive, PfpError
from pfp_mlops.domain.models import Decision, EvalResult, SplitManifest, ValidateResult
from pfp_mlops.domain.promotion_rule import finite, judge, ledger_facts, picture_title
from pfp_mlops.domain.transitions import plan_record
from pfp_mlops.services import lifecycle
from pfp_mlops.services.context import Context

if TYPE_CHECKING:
    from pfp_mlops.adapters.yolo import SplitEvaluation
    from pfp_mlops.domain.detection_metrics import BootstrapResult

log = logging.getLogger("pfp.decision")
EVIDENCE_DIR = "validate"


def evidence_experiment(ctx: Context) -> str:
    return f"{ctx.cfg.registry.lifecycle_experiment}-evaluations"


def decide(ctx: Context, *, challenger_version: int, champion_version: int | None, challenger_eval: EvalResult,
           champion_eval: EvalResult | None, manifest: SplitManifest,
           ledger_extra: dict[str, Any] | None = None, challenger_records: SplitEvaluation | None = None,
           champion_records: SplitEvaluation | None = None) -> Decision:
    """The validate decision with its evidence; raises Inconclusive (after a ledger entry) when the interval can't tell.

    `ledger_extra`, when given, receives `comparison_run_id` so the caller's ledger entry links to the evidence.
    `challenger_records`/`champion_records`: the per-image records the caller already has (validate evaluates each
    side once, through `services.evaluation.evaluate`); evaluated here when not given.
    """
    from pfp_mlops.domain.detection_metrics import paired_bootstrap
    from pfp_mlops.services.evaluation import evaluate

    g = ctx.cfg.gates.validate_
    if g.decision in ("bootstrap", "guarded") and g.metric != "map50":
        raise ConfigError(f"gates.validate.decision: {g.decision} compares mAP50; set gates.validate.metric to map50 "
                          f"(got {g.metric}) or gates.validate.decision to point")
    min_absolute = ctx.cfg.gates.promote.min_map50 if g.metric == "map50" else 0.0
    if champion_eval is None or champion_version is None:
        first = judge(challenger_eval, None, None, g, min_absolute=min_absolute)
        if ledger_extra is not None:
            ledger_extra.update(ledger_facts(first))
        return first
    reg, name = ctx.registry, ctx.model_name
    c = challenger_records or evaluate(ctx, reg.version(name, challenger_version), manifest)
    p = champion_records or evaluate(ctx, reg.version(name, champion_version), manifest)
    if c.images != p.images or c.result.protocol_fingerprint != p.result.protocol_fingerprint:
        raise PfpError("champion and challenger records cover different images or protocols; cannot pair them")
    boot = paired_bootstrap(p.records, c.records, n_resamples=g.bootstrap_resamples, seed=g.bootstrap_seed)
    decision = judge(challenger_eval, champion_eval, boot, g, min_absolute=min_absolute)
    run_id = _log_evidence(ctx, decision, boot, c, p, challenger_version, champion_version)
    decision = dataclasses.replace(decision, metrics={**decision.metrics, "comparison_run_id": run_id})
    if ledger_extra is not None:
        ledger_extra["comparison_run_id"] = run_id
        ledger_extra.update(ledger_facts(decision))
    if decision.verdict == "inconclusive":
        metrics = {"challenger_map50": challenger_eval.map50, "champion_map50": champion_eval.map50,
                   "delta_map50": boot.point_delta, "delta_ci_low": boot.ci_low, "delta_ci_high": boot.ci_high,
                   "required_delta": decision.metrics.get("required_delta")}
        entry = lifecycle.record(ctx, plan_record(
            name, "validate", "inconclusive", from_version=champion_version, to_version=challenger_version,
            decision=decision, metrics=metrics,
            extra={**(ledger_extra or {}), **ledger_facts(decision), "comparison_run_id": run_id}))
        _alert_inconclusive(ctx, decision, challenger_version, champion_version)
        result = ValidateResult(name, challenger_version, champion_version, decision, "inconclusive",
                                challenger_eval, champion_eval, production=champion_version, ledger_run_id=entry)
        raise Inconclusive(f"challenger v{challenger_version} vs production v{champion_version}: verdict "
                           f"inconclusive, nothing changed: {'; '.join(decision.reasons)}", decision=result)
    return decision


def _alert_inconclusive(ctx: Context, decision: Decision, challenger_version: int, champion_version: int) -> None:
    """An inconclusive verdict needs a human (more test data, or an explicit decision): say so where CI listens."""
    from pfp_mlops.adapters.alerts import send_alert

    m = decision.metrics
    boot = m.get("bootstrap") or {}
    name = ctx.model_name
    alert = send_alert(
        {"event": "inconclusive", "model": name, "challenger": challenger_version, "champion": champion_version,
         "decision_mode": m.get("decision_mode"), "point_verdict": m.get("point_verdict"),
         "delta_map50": boot.get("point_delta"), "ci_low": boot.get("ci_low"), "ci_high": boot.get("ci_high"),
         "n_test_images": m.get("n_test_images"), "images_needed_estimate": m.get("images_needed_estimate"),
         "needs_human": True, "reasons": decision.reasons,
         "summary": f"pfp: {name} challenger v{challenger_version} vs production v{champion_version}: inconclusive, "
                    f"needs a human; nothing changed: {'; '.join(decision.reasons)}"},
        alerts_file=ctx.home / "alerts.jsonl", webhook_url=ctx.settings.alert_webhook_url,
    )
    ctx.say(f"alert: webhook {alert['webhook']}")


def _log_evidence(ctx: Context, decision: Decision, boot: BootstrapResult, c: Any, p: Any, challenger_version: int,
                  champion_version: int) -> str:
    """One run with the picture, the decision and both models' per-image records; returns its id."""
    from pfp_mlops.services.evaluation import records_payload

    name = ctx.model_name
    need = decision.metrics.get("required_delta", math.nan)
    run_id = ctx.registry.create_finished_run(
        evidence_experiment(ctx), f"validate:{name}:v{challenger_version}-vs-v{champion_version}",
        tags={"pfp.model": name, "pfp.challenger": challenger_version, "pfp.champion": champion_version,
              "pfp.verdict": decision.verdict, "pfp.decision_mode": decision.metrics.get("decision_mode"),
              "pfp.eval_fingerprint": c.result.protocol_fingerprint},
        metrics={"challenger_map50": c.result.map50, "champion_map50": p.result.map50,
                 "delta_map50": boot.point_delta, "delta_ci_low": boot.ci_low, "delta_ci_high": boot.ci_high,
                 "required_delta": need},
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = []
        try:
            from pfp_mlops.adapters.plots import comparison_png

            files.append(comparison_png(
                d / "comparison.png", class_names=list(ctx.cfg.data.classes),
                champion_ap50=p.result.per_class_ap50, challenger_ap50=c.result.per_class_ap50,
                champion_label=f"production v{champion_version}", challenger_label=f"challenger v{challenger_version}",
                delta=boot.point_delta, ci_low=boot.ci_low, ci_high=boot.ci_high,
                required=need if finite(need) else 0.0, confidence=boot.confidence,
                verdict=str(decision.verdict), decision_mode=decision.metrics.get("decision_mode"),
                title=picture_title(name, challenger_version, champion_version, decision),
            ))
        except Exception as e:  # noqa: BLE001 - a missing picture must not block a decision; the JSON has it all
            log.warning("comparison picture not drawn: %s: %s", type(e).__name__, str(e)[:200])
        payload = {"decision": {**decision.to_dict(), "metrics": {**decision.to_dict()["metrics"],
                                                                    "comparison_run_id": run_id}},
                   "challenger": {"version": challenger_version, **c.result.to_dict()},
                   "champion": {"version": champion_version, **p.result.to_dict()}}
        for fname, data in (("decision.json", payload), ("challenger_records.json", records_payload(c)),
                            ("champion_records.json", records_payload(p))):
            (d / fname).write_text(json.dumps(data, allow_nan=False, default=str), encoding="utf-8")
            files.append(d / fname)
        for f in files:
            ctx.registry.log_run_artifact(run_id, f, EVIDENCE_DIR)
    return run_id

