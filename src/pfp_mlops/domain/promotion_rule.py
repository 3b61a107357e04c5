"""The promotion rule of `pfp validate`, pure: point rule, paired-bootstrap interval, per-class non-regression.

Both modes compute and report the interval of ΔmAP50 = challenger − champion from a paired bootstrap over the test
images (computed by the service, `domain.detection_metrics.paired_bootstrap`):

* `decision: point`: the point rule of `domain.gates.validate_gate` decides.
* `decision: bootstrap`: the interval decides against the required improvement the gate implies, as an absolute
  ΔmAP50 (relative mode: champion × r; absolute mode: a): promote when its lower bound clears it, reject when its
  upper bound is below it, inconclusive otherwise. A tie never promotes (identical models give [0, 0]: reject).

In both modes the hard rules still reject: missing/NaN metrics, the absolute minimum, and a class whose AP50 drops
by more than `max_class_drop`. This module only answers; the service logs the evidence and writes the ledger.
"""

from __future__ import annotations

import math
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
        return Decision("validate", point.passed, reasons, metrics, verdict=point.verdict)
    p = champion.map50
    need = required_delta(p, mode=gate.mode, min_improvement=gate.min_improvement) if finite(p) else math.nan
    from pfp_mlops.domain.detection_metrics import verdict

    # EPS as in the point rule: a lower bound at exactly "+1 %" clears it despite float error.
    b_verdict = verdict(boot, need - EPS) if finite(need) and finite(challenger.map50) else "reject"
    metrics.update(bootstrap=boot.to_dict(), required_delta=need, bootstrap_verdict=b_verdict)
    line = (f"ΔmAP50 {boot.point_delta:+.4f}, {boot.confidence:.0%} interval [{boot.ci_low:+.4f}, "
            f"{boot.ci_high:+.4f}] ({boot.n_resamples} paired resamples of the test images, seed {boot.seed}); "
            f"required {need:+.4f}")
    if gate.decision == "point":
        reasons = [*point.reasons, f"{line}: the bootstrap verdict would be {b_verdict}"]
        return Decision("validate", point.passed, reasons, metrics, verdict=point.verdict)

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
    return Decision("validate", final == "promote", reasons + hard, metrics, verdict=final)


def finite(x: float | None) -> bool:
    """A real number (not None, NaN or ±inf): the only kind of score a rule may compare."""
    return isinstance(x, int | float) and math.isfinite(x)
