"""The validate decision (domain.promotion_rule.judge): point rule, bootstrap verdict, hard rules, reported interval."""

from __future__ import annotations

import math

import pytest

from pfp_mlops.domain.detection_metrics import BootstrapResult
from pfp_mlops.domain.models import EvalResult
from pfp_mlops.domain.promotion_rule import judge, required_delta
from pfp_mlops.settings import ValidateGate


def ev(map50: float, per_class: dict[str, float] | None = None) -> EvalResult:
    return EvalResult(map50=map50, map50_95=map50 / 2, precision=0.5, recall=0.5,
                      per_class_ap50=per_class or {"a": map50, "b": map50}, latency_ms=1.0, n_images=50,
                      split="test", split_fingerprint="s", protocol_fingerprint="p")


def boot(point: float, low: float, high: float) -> BootstrapResult:
    return BootstrapResult(delta_mean=point, ci_low=low, ci_high=high, n_resamples=2000, seed=0, point_delta=point)


def gate(**kw) -> ValidateGate:
    return ValidateGate(**kw)


@pytest.mark.parametrize(("mode", "r", "champion", "expected"), [
    ("relative", 0.01, 0.80, 0.008), ("relative", 0.05, 0.50, 0.025), ("relative", 0.01, 0.0, 0.0),
    ("absolute", 0.02, 0.80, 0.02), ("absolute", 0.0, 0.30, 0.0),
])
def test_required_delta_is_the_absolute_gain_the_gate_implies(mode, r, champion, expected):
    """Relative mode asks champion × r, absolute mode asks a, both as a ΔmAP50."""
    assert required_delta(champion, mode=mode, min_improvement=r) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("low", "high", "verdict", "passed"), [
    (0.010, 0.060, "promote", True),     # the whole interval clears +0.008
    (0.008, 0.060, "promote", True),     # lower bound exactly at the bar
    (-0.010, 0.060, "inconclusive", False),
    (0.000, 0.0079, "reject", False),    # upper bound below the bar
    (0.0, 0.0, "reject", False),         # identical models
])
def test_bootstrap_mode_follows_the_interval(low, high, verdict, passed):
    """decision: bootstrap → promote / reject / inconclusive from the interval against champion × r."""
    d = judge(ev(0.83), ev(0.80), boot((low + high) / 2, low, high), gate(decision="bootstrap"), min_absolute=0.0)
    assert d.verdict == verdict and d.passed is passed
    assert d.metrics["required_delta"] == pytest.approx(0.008)
    assert d.metrics["bootstrap"]["ci_low"] == low and d.metrics["point_verdict"] == "promote"
    assert f"[{low:+.4f}, {high:+.4f}]" in d.reasons[0]


def test_point_mode_decides_by_the_point_rule_and_still_reports_the_interval():
    """decision: point → the point rule promotes a +3.75 % challenger although the interval straddles the bar."""
    d = judge(ev(0.83), ev(0.80), boot(0.03, -0.02, 0.08), gate(decision="point"), min_absolute=0.0)
    assert d.passed and d.verdict == "promote"
    assert d.metrics["bootstrap_verdict"] == "inconclusive" and d.metrics["decision_mode"] == "point"
    assert any("bootstrap verdict would be inconclusive" in r for r in d.reasons)


def test_absolute_mode_bar_is_a():
    """absolute mode: the bootstrap bar is a itself, whatever the champion's score."""
    g = gate(decision="bootstrap", mode="absolute", min_improvement=0.05)
    assert judge(ev(0.9), ev(0.8), boot(0.1, 0.06, 0.14), g, min_absolute=0.0).verdict == "promote"
    assert judge(ev(0.9), ev(0.8), boot(0.1, 0.04, 0.14), g, min_absolute=0.0).verdict == "inconclusive"
    assert judge(ev(0.82), ev(0.8), boot(0.02, 0.0, 0.049), g, min_absolute=0.0).verdict == "reject"


def test_a_tie_never_promotes_even_with_a_zero_bar():
    """r = 0: an interval [0, 0] (the same weights) rejects; one strictly above 0 promotes."""
    g = gate(decision="bootstrap", min_improvement=0.0)
    assert judge(ev(0.8), ev(0.8), boot(0.0, 0.0, 0.0), g, min_absolute=0.0).verdict == "reject"
    assert judge(ev(0.81), ev(0.8), boot(0.01, 0.001, 0.02), g, min_absolute=0.0).verdict == "promote"


@pytest.mark.parametrize("mode", ["point", "bootstrap"])
def test_a_class_drop_rejects_naming_the_class_even_when_the_mean_improves(mode):
    """max_class_drop: class b falls 0.9 → 0.6 while mAP50 rises; both modes reject and name b."""
    champion = ev(0.60, {"a": 0.30, "b": 0.90})
    challenger = ev(0.75, {"a": 0.90, "b": 0.60})
    g = gate(decision=mode, max_class_drop=0.1)
    d = judge(challenger, champion, boot(0.15, 0.10, 0.20), g, min_absolute=0.0)
    assert not d.passed and d.verdict == "reject"
    assert any("AP50[b]" in r and "0.9000 -> 0.6000" in r for r in d.reasons)
    assert not any("AP50[a]" in r for r in d.reasons)
    assert judge(challenger, champion, boot(0.15, 0.10, 0.20), gate(decision=mode), min_absolute=0.0).passed


def test_bootstrap_mode_keeps_the_absolute_minimum():
    """An interval that clears the bar does not lift a challenger under gates.promote.min_map50."""
    d = judge(ev(0.45), ev(0.30), boot(0.15, 0.1, 0.2), gate(decision="bootstrap"), min_absolute=0.5)
    assert not d.passed and any("absolute minimum" in r for r in d.reasons)


@pytest.mark.parametrize("mode", ["point", "bootstrap"])
def test_nan_never_promotes(mode):
    d = judge(ev(math.nan), ev(0.5), boot(0.1, 0.05, 0.2), gate(decision=mode), min_absolute=0.0)
    assert not d.passed and d.verdict == "reject"


def test_first_deployment_has_no_interval():
    """No champion: only the absolute minimum applies, and the reasons say why there is no interval."""
    d = judge(ev(0.6), None, None, gate(decision="bootstrap"), min_absolute=0.5)
    assert d.passed and d.verdict == "promote"
    assert "no interval" in d.reasons[-1] and "bootstrap" not in d.metrics


def test_bootstrap_mode_needs_map50():
    """The bootstrap compares mAP50: `metric: map50_95` with `decision: bootstrap` is a configuration error (exit 2)."""
    from pfp_mlops.domain.errors import ConfigError
    from pfp_mlops.services.context import Context
    from pfp_mlops.services.decision import decide
    from pfp_mlops.settings import PipelineConfig, Settings

    cfg = PipelineConfig.model_validate({"gates": {"validate": {"metric": "map50_95", "decision": "bootstrap"}}})
    ctx = Context(Settings(_env_file=None), cfg)
    with pytest.raises(ConfigError, match="gates.validate.metric"):
        decide(ctx, challenger_version=2, champion_version=1, challenger_eval=ev(0.8), champion_eval=ev(0.7),
               manifest={})
