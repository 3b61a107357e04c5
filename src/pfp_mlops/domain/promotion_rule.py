"""The promotion rule of `pfp validate`, pure: point rule, paired-bootstrap interval, per-class non-regression.

Every mode computes and reports the interval of ΔmAP50 = challenger − champion from a paired bootstrap over the test
images (computed by the service, `domain.detection_metrics.paired_bootstrap`):

* `decision: guarded` (default): promote iff the point rule passes AND the interval's lower bound is > 0 (better by
  the bar, and demonstrably better at all); reject iff the point rule fails; inconclusive when the point rule passes
  but the interval includes 0. "≥ 1 % better" on one number of a small test set promotes noise; the interval says
  whether this test set can tell, and the reasons say roughly how many test images it would take.
* `decision: point`: the point rule of `domain.gates.validate_gate` decides.
* `decision: bootstrap`: the interval decides against the required improvement the gate implies, as an absolute
  ΔmAP50 (relative mode: champion × r; absolute mode: a): promote when its lower bound clears it, reject when its
  upper bound is below it, inconclusive otherwise. A tie never promotes (identical models give [0, 0]: reject).

In every mode the hard rules still reject: missing/NaN metrics, the absolute minimum, and a class whose AP50 drops
by more than `max_class_drop`. This module only answers; the service logs the evidence and writes the ledger.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

from pfp_mlops.domain.gates import EPS, _class_drops, required_score, validate_gate
from pfp_mlops.domain.models import Decision, EvalResult

if TYPE_CHECKING:
    from pfp_mlops.domain.detection_metrics import BootstrapResult


class PromotionGate(Protocol):
    """The gate settings the rule reads (`settings.ValidateGate` satisfies it; the domain does not import settings)."""

    @property
    def metric(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def min_improvement(self) -> float: ...
    @property
    def max_class_drop(self) -> float | None: ...
    @property
    def decision(self) -> str: ...


def required_delta(champion_map50: float, *, mode: str, min_improvement: float) -> float:
    """The absolute ΔmAP50 the gate asks for: champion × r (relative) or a (absolute)."""
    return required_score(champion_map50, mode=mode, min_improvement=min_improvement) - champion_map50


def judge(challenger: EvalResult, champion: EvalResult | None, boot: BootstrapResult | None, gate: PromotionGate,
          *, min_absolute: float) -> Decision:
    """Pure: the validate decision from both results and the bootstrap of their per-image records."""
    point = validate_gate(challenger, champion, metric=gate.metric, mode=gate.mode,
                          min_improvement=gate.min_improvement, min_absolute=min_absolute,
                          max_class_drop=gate.max_class_drop)
    metrics: dict[str, Any] = {**point.metrics, "decision_mode": gate.decision, "point_verdict": point.verdict}
    if champion is None or boot is None:
        reasons = [*point.reasons, "no interval: there is no production model to compare with"]
        return Decision("validate", point.passed, reasons, metrics | {"decided_by": "first deployment"},
                        verdict=point.verdict)
    p = champion.map50
    need = required_delta(p, mode=gate.mode, min_improvement=gate.min_improvement) if finite(p) else math.nan
    from pfp_mlops.domain.detection_metrics import verdict

    # EPS as in the point rule: a lower bound at exactly "+1 %" clears it despite float error.
    b_verdict = verdict(boot, need - EPS) if finite(need) and finite(challenger.map50) else "reject"
    n = boot.n_images if boot.n_images > 0 else challenger.n_images
    metrics.update(bootstrap=boot.to_dict(), required_delta=need, bootstrap_verdict=b_verdict, n_test_images=n)
    line = (f"ΔmAP50 {boot.point_delta:+.4f}, {boot.confidence:.0%} interval [{boot.ci_low:+.4f}, "
            f"{boot.ci_high:+.4f}] ({boot.n_resamples} paired resamples of the test images, seed {boot.seed}); "
            f"required {need:+.4f}")
    if gate.decision == "point":
        reasons = [*point.reasons, f"{line}: the bootstrap verdict would be {b_verdict}"]
        return Decision("validate", point.passed, reasons, metrics | {"decided_by": "point rule"},
                        verdict=point.verdict)
    if gate.decision == "guarded":
        return _guarded(point, boot, need, metrics, n=n)

    if not (finite(challenger.map50) and finite(p)):
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
    metrics["decided_by"] = "hard rule" if hard else "interval"
    return Decision("validate", final == "promote", reasons + hard, metrics, verdict=final)


def _guarded(point: Decision, boot: BootstrapResult, need: float, metrics: dict[str, Any], *, n: int) -> Decision:
    """Point rule first (it holds the bar and the hard rules), then the interval must clear 0 (n: test images)."""
    interval = (f"{boot.confidence:.0%} interval of ΔmAP50 [{boot.ci_low:+.4f}, {boot.ci_high:+.4f}] "
                f"({boot.n_resamples} paired resamples of the {n} test images, seed {boot.seed})")
    metrics["interval_bar"] = 0.0
    if not point.passed:
        reasons = [*point.reasons, f"ΔmAP50 {boot.point_delta:+.4f}, {interval}: the point rule rejects "
                                   f"(guarded: reject)"]
        return Decision("validate", False, reasons, metrics | {"decided_by": "point rule"}, verdict="reject")
    if boot.ci_low > EPS:
        reasons = [*point.reasons, f"ΔmAP50 {boot.point_delta:+.4f} meets the bar {need:+.4f} and the {interval} "
                                   f"lies above 0: demonstrably better (guarded: promote)"]
        return Decision("validate", True, reasons, metrics | {"decided_by": "point rule and interval"},
                        verdict="promote")
    se = boot.std_error if finite(boot.std_error) else _se_from_interval(boot)
    needed = images_needed(boot.point_delta, se, n, confidence=boot.confidence)
    metrics.update(images_needed_estimate=needed, decided_by="interval")
    reasons = [*point.reasons,
               f"but the {interval} includes 0 (lower bound {boot.ci_low:+.4f} ≤ 0): on {n} test images the gain "
               f"{boot.point_delta:+.4f} is not distinguishable from noise (guarded: inconclusive, nothing changed)",
               _advice(boot.point_delta, se, n, needed)]
    return Decision("validate", False, reasons, metrics, verdict="inconclusive")


def ledger_facts(decision: Decision) -> dict[str, str]:
    """What the ledger entry (and so `pfp history`) records about how the decision was made, as tag strings."""
    m = decision.metrics
    facts = {k: str(m[k]) for k in ("decision_mode", "point_verdict", "bootstrap_verdict", "decided_by")
             if m.get(k) is not None}
    if decision.verdict:
        facts["verdict"] = decision.verdict
    boot = m.get("bootstrap")
    if boot:
        facts["delta_interval"] = f"[{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}]"
    if m.get("images_needed_estimate") is not None:
        facts["images_needed_estimate"] = str(m["images_needed_estimate"])
    return facts


def picture_title(model: str, challenger: int, champion: int, decision: Decision) -> str:
    """The comparison picture's title: who against whom, the final verdict and what decided it."""
    m = decision.metrics
    mode = m.get("decision_mode")
    title = f"{model}: v{challenger} vs v{champion}: {decision.verdict}"
    if mode == "guarded":
        title += f" (guarded: point rule {m.get('point_verdict')}, interval must clear 0)"
    elif mode:
        title += f" (decision: {mode})"
    return title


def images_needed(delta: float, std_error: float, n_images: int, *, confidence: float = 0.95) -> int | None:
    """Estimate: test images for which the interval of an unchanged gain `delta` would clear 0.

    The bootstrap standard error shrinks as 1/√n, so with N images the lower bound is about
    delta − z·se·√(n/N); it clears 0 once N > n·(z·se/delta)². An estimate: it assumes the gain and the per-image
    spread stay as observed. None when it cannot say (no positive gain, no spread, no images).
    """
    if not (finite(delta) and finite(std_error)) or delta <= 0 or std_error <= 0 or n_images <= 0:
        return None
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    return math.floor(n_images * (z * std_error / delta) ** 2) + 1


def _se_from_interval(boot: BootstrapResult) -> float:
    """The standard error a normal interval of this width implies (for results that did not record it)."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - boot.confidence) / 2.0)
    return (boot.ci_high - boot.ci_low) / (2.0 * z)


def _advice(delta: float, se: float, n: int, needed: int | None) -> str:
    what = ("add test images (a new split moves items: retrain on it), or decide by the point rule alone with "
            "gates.validate.decision: point")
    if needed is None:
        return f"what to do: {what}"
    if needed <= n:
        return (f"estimate: the gain is at the edge of what {n} test images can show (from the bootstrap standard "
                f"error {se:.4f} a normal interval would just clear 0, the percentile interval does not); a somewhat "
                f"larger test set should settle it; {what}")
    return (f"estimate: a gain of {delta:+.4f} would need about {needed} test images ({needed / n:.1f}× the {n} "
            f"now) for the interval to clear 0 (bootstrap standard error {se:.4f}, scaled by √(n/N)); {what}")


def finite(x: float | None) -> bool:
    """A real number (not None, NaN or ±inf): the only kind of score a rule may compare."""
    return isinstance(x, int | float) and math.isfinite(x)
