"""The gates' edge cases, as parametrized tables."""

from __future__ import annotations

import math

import pytest

from pfp_mlops.domain.gates import (
    promote_gate,
    register_gate,
    regression_check,
    required_score,
    validate_gate,
)
from pfp_mlops.domain.models import EvalResult


def ev(map50: float, recall: float = 0.9, per_class: dict | None = None, latency: float = 5.0) -> EvalResult:
    return EvalResult(map50=map50, map50_95=map50 / 2 if map50 == map50 else map50, precision=0.9, recall=recall,
                      per_class_ap50=per_class or {}, latency_ms=latency, n_images=10, split="test",
                      split_fingerprint="s", protocol_fingerprint="p")


@pytest.mark.parametrize(
    ("challenger", "champion", "mode", "r", "expected"),
    [
        (0.80, None, "relative", 0.01, True),  # first deployment: absolute minimum only
        (0.80, 0.80, "relative", 0.01, False),  # exact tie never promotes
        (0.80, 0.80, "relative", 0.0, False),  # tie with r = 0 still does not promote
        (0.505, 0.50, "relative", 0.01, True),  # exactly +1 % promotes (float error absorbed)
        (0.5049, 0.50, "relative", 0.01, False),  # just under +1 %
        (0.60, 0.0, "relative", 0.01, True),  # champion 0: any positive score wins
        (0.0, 0.0, "relative", 0.01, False),  # both 0: no improvement
        (float("nan"), 0.5, "relative", 0.01, False),  # NaN challenger never promotes
        (0.9, float("nan"), "relative", 0.01, False),  # NaN champion never promotes
        (0.52, 0.50, "absolute", 0.02, True),  # absolute mode: +0.02 exactly
        (0.519, 0.50, "absolute", 0.02, False),
        (0.40, 0.50, "relative", 0.01, False),  # worse
    ],
)
def test_validate_gate_table(challenger, champion, mode, r, expected):
    """It promotes exactly when the challenger clears the configured improvement over the champion."""
    d = validate_gate(ev(challenger), None if champion is None else ev(champion), mode=mode, min_improvement=r)
    assert d.passed is expected
    assert d.reasons and all(isinstance(x, str) and x for x in d.reasons)
    assert d.verdict == ("promote" if expected else "reject")


def test_missing_challenger_never_promotes():
    """It rejects when the challenger has no metric at all."""
    d = validate_gate({"map50_95": 0.9}, ev(0.5))
    assert not d.passed and "missing" in d.reasons[0]


def test_first_deployment_below_absolute_minimum_is_rejected():
    """It refuses a first deployment under the absolute minimum."""
    d = validate_gate(ev(0.3), None, min_absolute=0.5)
    assert not d.passed and "no production model yet" in d.reasons[0]


def test_class_drop_rejects_even_when_mean_improves():
    """It names the class whose AP50 dropped more than the tolerance."""
    c = ev(0.80, per_class={"rock": 0.95, "paper": 0.95, "scissors": 0.50})
    p = ev(0.70, per_class={"rock": 0.60, "paper": 0.60, "scissors": 0.90})
    d = validate_gate(c, p, max_class_drop=0.05)
    assert not d.passed
    assert any("scissors" in x for x in d.reasons)
    assert validate_gate(c, p).passed  # without the option the mean decides


@pytest.mark.parametrize(("score", "minimum", "ok"), [(0.5, 0.5, True), (0.4999, 0.5, False), (math.nan, 0.1, False)])
def test_register_gate(score, minimum, ok):
    """It admits a model at or above the minimum TEST mAP50, never a NaN."""
    assert register_gate(ev(score), min_map50=minimum).passed is ok


def test_promote_gate_lists_every_failure():
    """It lists each unmet staging requirement."""
    d = promote_gate(ev(0.4, recall=0.2, per_class={"rock": 0.1}, latency=50), min_map50=0.5, min_recall=0.5,
                     min_class_ap50=0.3, max_latency_ms=10)
    assert not d.passed
    text = " ".join(d.reasons)
    for word in ("mAP50", "recall", "AP50[rock]", "latency"):
        assert word in text


def test_required_score_modes():
    """It computes the bar for relative and absolute modes."""
    assert required_score(0.5, mode="relative", min_improvement=0.1) == pytest.approx(0.55)
    assert required_score(0.5, mode="absolute", min_improvement=0.1) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        required_score(0.5, mode="other", min_improvement=0.1)


@pytest.mark.parametrize(("cur", "prev", "tol", "rollback"), [(0.7, 0.8, 0.0, True), (0.79, 0.8, 0.02, False),
                                                               (0.8, 0.8, 0.0, False)])
def test_regression_check(cur, prev, tol, rollback):
    """It calls for a rollback only when production is worse than the previous one beyond the tolerance."""
    assert regression_check(ev(cur), ev(prev), tolerance=tol).passed is rollback
