"""The promotion decision of `pfp validate`: point rule, paired-bootstrap interval, per-class non-regression.

Both modes compute and report the interval of ΔmAP50 = challenger − champion from a paired bootstrap over the test
images (the same resample for both models, `gates.validate.bootstrap_resamples`, `bootstrap_seed`):

* `decision: point` (default): the point rule of `domain.gates.validate_gate` decides.
* `decision: bootstrap`: the interval decides against the required improvement the gate implies, as an absolute
  ΔmAP50 (relative mode: champion × r; absolute mode: a): promote when its lower bound clears it, reject when its
  upper bound is below it, inconclusive otherwise. Inconclusive changes nothing, is recorded in the ledger and
  raises `Inconclusive` (exit 11). A tie never promotes (identical models give the interval [0, 0]: reject).

In both modes the hard rules still reject: missing/NaN metrics, the absolute minimum, and a class whose AP50 drops
by more than `max_class_drop`. The evidence (a PNG, the decision as JSON, both models' per-image records) is logged
to one run of the `<lifecycle experiment>-evaluations` experiment; the ledger entry carries its run id.
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
from pfp_mlops.domain.gates import EPS, _class_drops, required_score, validate_gate
from pfp_mlops.domain.models import Decision, EvalResult, SplitManifest, ValidateResult
from pfp_mlops.services import ledger
from pfp_mlops.services.context import Context

if TYPE_CHECKING:
    from pfp_mlops.domain.detection_metrics import BootstrapResult
    from pfp_mlops.settings import ValidateGate

log = logging.getLogger("pfp.decision")
EVIDENCE_DIR = "validate"


def evidence_experiment(ctx: Context) -> str:
    return f"{ctx.cfg.registry.lifecycle_experiment}-evaluations"


def required_delta(champion_map50: float, *, mode: str, min_improvement: float) -> float:
    """The absolute ΔmAP50 the gate asks for: champion × r (relative) or a (absolute)."""
    return required_score(champion_map50, mode=mode, min_improvement=min_improvement) - champion_map50


def judge(challenger: EvalResult, champion: EvalResult | None, boot: BootstrapResult | None, gate: ValidateGate,
          *, min_absolute: float) -> Decision:
    """Pure: the validate decision from both results and the bootstrap of their per-image records."""
    point = validate_gate(challenger, champion, metric=gate.metric, mode=gate.mode,
                          min_improvement=gate.min_improvement, min_absolute=min_absolute,
                          max_class_drop=gate.max_class_drop)
    metrics: dict[str, Any] = {**point.metrics, "decision_mode": gate.decision, "point_verdict": point.verdict}
    if champion is None or boot is None:
        reasons = [*point.reasons, "no interval: there is no production model to compare with"]
        return Decision("validate", point.passed, reasons, metrics, verdict=point.verdict)
    p = champion.map50
    need = required_delta(p, mode=gate.mode, min_improvement=gate.min_improvement) if _finite(p) else math.nan
    from pfp_mlops.domain.detection_metrics import verdict

    # EPS as in the point rule: a lower bound at exactly "+1 %" clears it despite float error.
    b_verdict = verdict(boot, need - EPS) if _finite(need) and _finite(challenger.map50) else "reject"
    metrics.update(bootstrap=boot.to_dict(), required_delta=need, bootstrap_verdict=b_verdict)
    line = (f"ΔmAP50 {boot.point_delta:+.4f}, {boot.confidence:.0%} interval [{boot.ci_low:+.4f}, "
            f"{boot.ci_high:+.4f}] ({boot.n_resamples} paired resamples of the test images, seed {boot.seed}); "
            f"required {need:+.4f}")
    if gate.decision == "point":
        reasons = [*point.reasons, f"{line}: the bootstrap verdict would be {b_verdict}"]
        return Decision("validate", point.passed, reasons, metrics, verdict=point.verdict)

    if not (_finite(challenger.map50) and _finite(p)):
        return Decision("validate", False, [*point.reasons, line], metrics, verdict="reject")
    why = {"promote": "the whole interval clears the required improvement",
           "reject": "the interval lies below the required improvement" if boot.ci_high > 0
           else "the challenger is not better on any resample",
           "inconclusive": "the interval straddles the required improvement: this test set cannot tell"}[b_verdict]
    reasons = [f"{line}: {why} ({b_verdict})"]
    hard: list[str] = []
    if challenger.map50 + EPS < min_absolute:
        hard.append(f"map50 {challenger.map50:.4f} < absolute minimum {min_absolute:.4f}")
    if gate.max_class_drop is not None:
        hard += _class_drops(challenger, champion, gate.max_class_drop)
    final = "reject" if hard else b_verdict
    return Decision("validate", final == "promote", reasons + hard, metrics, verdict=final)


def decide(ctx: Context, *, challenger_version: int, champion_version: int | None, challenger_eval: EvalResult,
           champion_eval: EvalResult | None, manifest: SplitManifest,
           ledger_extra: dict[str, Any] | None = None) -> Decision:
    """The validate decision with its evidence; raises Inconclusive (after a ledger entry) when the interval can't tell.

    `ledger_extra`, when given, receives `comparison_run_id` so the caller's ledger entry links to the evidence.
    """
    from pfp_mlops.domain.detection_metrics import paired_bootstrap
    from pfp_mlops.services.evaluation import evaluate_version_detailed

    g = ctx.cfg.gates.validate_
    if g.decision == "bootstrap" and g.metric != "map50":
        raise ConfigError(f"gates.validate.decision: bootstrap compares mAP50; set gates.validate.metric to map50 "
                          f"(got {g.metric})")
    min_absolute = ctx.cfg.gates.promote.min_map50 if g.metric == "map50" else 0.0
    if champion_eval is None or champion_version is None:
        return judge(challenger_eval, None, None, g, min_absolute=min_absolute)
    reg, name = ctx.registry, ctx.model_name
    c = evaluate_version_detailed(ctx, reg.version(name, challenger_version), manifest)
    p = evaluate_version_detailed(ctx, reg.version(name, champion_version), manifest)
    if c.images != p.images or c.result.protocol_fingerprint != p.result.protocol_fingerprint:
        raise PfpError("champion and challenger records cover different images or protocols; cannot pair them")
    boot = paired_bootstrap(p.records, c.records, n_resamples=g.bootstrap_resamples, seed=g.bootstrap_seed)
    decision = judge(challenger_eval, champion_eval, boot, g, min_absolute=min_absolute)
    run_id = _log_evidence(ctx, decision, boot, c, p, challenger_version, champion_version)
    decision = dataclasses.replace(decision, metrics={**decision.metrics, "comparison_run_id": run_id})
    if ledger_extra is not None:
        ledger_extra["comparison_run_id"] = run_id
    if decision.verdict == "inconclusive":
        metrics = {"challenger_map50": challenger_eval.map50, "champion_map50": champion_eval.map50,
                   "delta_ci_low": boot.ci_low, "delta_ci_high": boot.ci_high}
        ledger.record(ctx, "validate", from_version=champion_version, to_version=challenger_version,
                      decision=decision, outcome="inconclusive", metrics=metrics,
                      extra={**(ledger_extra or {}), "comparison_run_id": run_id})
        result = ValidateResult(name, challenger_version, champion_version, decision, "inconclusive",
                                challenger_eval, champion_eval, production=champion_version)
        raise Inconclusive(f"challenger v{challenger_version} vs production v{champion_version}: verdict "
                           f"inconclusive, nothing changed: {'; '.join(decision.reasons)}", decision=result)
    return decision


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
                required=need if _finite(need) else 0.0, confidence=boot.confidence,
                verdict=str(decision.verdict), title=f"{name}: v{challenger_version} vs v{champion_version}",
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


def _finite(x: float | None) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
