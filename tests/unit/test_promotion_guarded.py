"""`decision: guarded` (the default): promote iff the point rule passes AND the paired-bootstrap interval of ΔmAP50
lies above 0; reject iff the point rule fails; inconclusive otherwise.

Pure tables on per-image records built here (one class, one ground-truth box per image, one prediction per image that
is a true positive or not), through the real `paired_bootstrap` and `map50`: no model, milliseconds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pfp_mlops.domain.detection_metrics import PerImageRecords, map50, paired_bootstrap, verdict
from pfp_mlops.domain.gates import EPS, validate_gate
from pfp_mlops.domain.models import EvalResult
from pfp_mlops.domain.promotion_rule import images_needed, judge, ledger_facts, picture_title, required_delta
from pfp_mlops.settings import ValidateGate


def hits(n: int, found) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(found)] = True
    return out


def records(tp: np.ndarray) -> PerImageRecords:
    """One box per image; the model's one prediction per image finds it where `tp` is True (found boxes first)."""
    n = len(tp)
    conf = np.where(tp, 0.9, 0.4) - np.arange(n) * 1e-4  # distinct scores: no tie in the ranking
    return PerImageRecords(np.arange(n), np.zeros(n), conf, tp, np.ones((n, 1)), 1)


def result(rec: PerImageRecords) -> EvalResult:
    overall, per_class = map50(rec)
    return EvalResult(map50=overall, map50_95=overall / 2, precision=0.5, recall=0.5,
                      per_class_ap50={"rock": per_class.get(0, math.nan)}, latency_ms=1.0, n_images=rec.n_images,
                      split="test", split_fingerprint="s", protocol_fingerprint="p")


def decide(champion_tp, challenger_tp, *, decision: str = "guarded", min_absolute: float = 0.0, **gate):
    champion, challenger = records(champion_tp), records(challenger_tp)
    boot = paired_bootstrap(champion, challenger, n_resamples=2000, seed=0)
    g = ValidateGate(decision=decision, **gate)
    return judge(result(challenger), result(champion), boot, g, min_absolute=min_absolute), boot


# The tables: (champion finds, challenger finds) on n images.
CLEAR = (hits(200, range(100)), hits(200, range(140)))         # +0.20 on 200 images: interval [+0.15, +0.26]
NOISY = (hits(20, range(0, 10)), hits(20, range(2, 14)))       # +0.10 on 20 images, 6 disagree: [-0.15, +0.35]
WORSE = (hits(20, range(0, 12)), hits(20, range(0, 10)))
SAME = (hits(20, range(0, 10)), hits(20, range(0, 10)))
ZERO_CLEAR = (hits(40, []), hits(40, range(30)))               # champion at 0, challenger finds 30 of 40
ZERO_NOISY = (hits(40, []), hits(40, [3]))                     # champion at 0, challenger finds one box


@pytest.mark.parametrize(("case", "expected", "passed", "decided_by"), [
    (CLEAR, "promote", True, "point rule and interval"),
    (NOISY, "inconclusive", False, "interval"),
    (WORSE, "reject", False, "point rule"),
    (SAME, "reject", False, "point rule"),
    (ZERO_CLEAR, "promote", True, "point rule and interval"),
    (ZERO_NOISY, "inconclusive", False, "interval"),
], ids=["clear-gain", "noisy-gain", "worse", "identical", "champion-0-clear", "champion-0-one-image"])
def test_guarded_table(case, expected, passed, decided_by):
    """Point passes and the interval clears 0 → promote; point passes, the interval includes 0 → inconclusive;
    point fails (worse, identical) → reject; a champion at 0 is beaten only when the interval clears 0."""
    d, boot = decide(*case)
    assert (d.verdict, d.passed, d.metrics["decided_by"]) == (expected, passed, decided_by)
    assert d.metrics["decision_mode"] == "guarded" and d.metrics["interval_bar"] == 0.0
    assert d.metrics["point_verdict"] == ("reject" if expected == "reject" else "promote")
    assert d.metrics["bootstrap"]["ci_low"] == boot.ci_low and d.metrics["n_test_images"] == len(case[0])
    if expected == "inconclusive":
        assert boot.ci_low <= 0 < boot.point_delta
    if expected == "promote":
        assert boot.ci_low > 0


def test_identical_models_give_the_interval_zero_and_reject_as_not_better():
    d, boot = decide(*SAME)
    assert (boot.ci_low, boot.ci_high) == (0.0, 0.0)
    assert "not better than production" in d.reasons[0] and "guarded: reject" in d.reasons[-1]


def test_inconclusive_reasons_give_the_point_gain_the_interval_the_test_set_size_and_an_estimate():
    """What a human needs: the point rule's gain and bar, the interval, n, and roughly how many images would do."""
    d, boot = decide(*NOISY)
    point, interval, advice = d.reasons
    assert point == "map50 0.5950 vs production 0.4950 (+20.20%): meets +1.00% relative (needs >= 0.5000)"
    assert f"[{boot.ci_low:+.4f}, {boot.ci_high:+.4f}]" in interval and "includes 0" in interval
    assert "20 test images" in interval and "nothing changed" in interval
    needed = d.metrics["images_needed_estimate"]
    assert needed == images_needed(boot.point_delta, boot.std_error, 20) and needed > 20
    assert advice.startswith("estimate:") and f"about {needed} test images" in advice
    assert "gates.validate.decision: point" in advice
    facts = ledger_facts(d)
    assert facts == {"decision_mode": "guarded", "point_verdict": "promote", "bootstrap_verdict": "inconclusive",
                     "decided_by": "interval", "verdict": "inconclusive",
                     "delta_interval": f"[{boot.ci_low:+.4f}, {boot.ci_high:+.4f}]",
                     "images_needed_estimate": str(needed)}
    assert picture_title("m", 2, 1, d) == ("m: v2 vs v1: inconclusive (guarded: point rule promote, "
                                           "interval must clear 0)")


def test_the_estimate_is_about_where_the_interval_clears_zero():
    """The estimate scales the bootstrap standard error by √n. Repeating the same 20 images (same gain, same spread
    per image) twice as often as estimated clears 0; half as often does not."""
    champion, challenger = NOISY
    boot = paired_bootstrap(records(champion), records(challenger), n_resamples=2000, seed=0)
    needed = images_needed(boot.point_delta, boot.std_error, 20)
    assert needed is not None

    def low(copies: int) -> float:
        return paired_bootstrap(records(np.tile(champion, copies)), records(np.tile(challenger, copies)),
                                n_resamples=2000, seed=0).ci_low

    assert low(-(-2 * needed // 20)) > 0
    assert low(max(needed // 40, 1)) <= 0


@pytest.mark.parametrize(("delta", "se", "n", "expected"), [
    (0.04, 0.04, 45, 173),      # 45 × 1.96² = 172.9 → 173
    (0.10, 0.0125, 100, 7),     # 100 × (1.96 × 0.125)² = 6.0: already clear, the estimate lies below n
    (0.0, 0.05, 45, None), (-0.01, 0.05, 45, None), (0.05, 0.0, 45, None), (0.05, math.nan, 45, None),
    (0.05, 0.05, 0, None),
])
def test_images_needed_formula(delta, se, n, expected):
    assert images_needed(delta, se, n) == expected


def test_nan_rejects_under_guarded():
    champion, challenger = records(NOISY[0]), records(NOISY[1])
    boot = paired_bootstrap(champion, challenger, n_resamples=200, seed=0)
    nan = dataclasses.replace(result(challenger), map50=math.nan)
    for c, p in ((nan, result(champion)), (result(challenger), nan)):
        d = judge(c, p, boot, ValidateGate(), min_absolute=0.0)
        assert d.verdict == "reject" and not d.passed and "missing or NaN" in d.reasons[0]


def test_hard_rules_still_reject_under_guarded():
    """The absolute minimum and max_class_drop belong to the point rule: a clear gain under them rejects."""
    d, _ = decide(*CLEAR, min_absolute=0.9)
    assert d.verdict == "reject" and any("absolute minimum" in r for r in d.reasons)


def test_guarded_is_the_default():
    assert ValidateGate().decision == "guarded"


def test_first_deployment_is_unchanged_under_guarded():
    """No champion: the absolute minimum alone decides, as before; no interval."""
    ev = result(records(NOISY[1]))
    for mode in ("guarded", "point", "bootstrap"):
        d = judge(ev, None, None, ValidateGate(decision=mode), min_absolute=0.5)
        assert (d.verdict, d.passed) == ("promote", True) and "first deployment" in d.reasons[0]
        assert d.metrics["decided_by"] == "first deployment" and "bootstrap" not in d.metrics


@pytest.mark.parametrize("case", [CLEAR, NOISY, WORSE, SAME, ZERO_CLEAR, ZERO_NOISY],
                         ids=["clear-gain", "noisy-gain", "worse", "identical", "champion-0-clear", "champion-0-one"])
@pytest.mark.parametrize("mode", ["point", "bootstrap"])
def test_the_mode_switch_restores_point_and_bootstrap(case, mode):
    """`decision: point` is exactly the point rule (with the interval reported); `decision: bootstrap` exactly the
    interval against the bar, derived here from the two building blocks independently of `judge`."""
    d, boot = decide(*case, decision=mode)
    champion, challenger = result(records(case[0])), result(records(case[1]))
    point = validate_gate(challenger, champion, metric="map50", mode="relative", min_improvement=0.01)
    need = required_delta(champion.map50, mode="relative", min_improvement=0.01)
    by_interval = verdict(boot, need - EPS)
    if mode == "point":
        assert (d.verdict, d.passed, d.reasons[:-1]) == (point.verdict, point.passed, point.reasons)
        assert d.reasons[-1].endswith(f"the bootstrap verdict would be {by_interval}")
    else:
        assert (d.verdict, d.passed) == (by_interval, by_interval == "promote")
        assert d.reasons[0].endswith(f"({by_interval})")
    assert d.metrics["bootstrap_verdict"] == by_interval and d.metrics["point_verdict"] == point.verdict


def test_validate_table_rows_and_history_cell_say_how_it_was_decided():
    """The rows `pfp validate` prints and the `decision` cell of `pfp history`, from a real guarded decision."""
    from pfp_mlops.cli.commands.history import decision_cell
    from pfp_mlops.cli.commands.validate import decision_rows

    d, boot = decide(*NOISY)
    rows = dict(decision_rows(d.metrics, d.verdict))
    assert rows["verdict"] == "inconclusive (decision: guarded, decided by the interval)"
    assert rows["point rule"] == f"promote (bar ΔmAP50 ≥ {d.metrics['required_delta']:+.4f})"
    assert rows["interval ΔmAP50"] == f"[{boot.ci_low:+.4f}, {boot.ci_high:+.4f}] 95%, must clear 0: includes 0"
    assert rows["bootstrap mode"] == "would say inconclusive" and rows["test images"] == "20"
    assert rows["images needed (estimate)"] == str(d.metrics["images_needed_estimate"])
    cell = decision_cell(ledger_facts(d))
    assert cell == f"guarded (point promote, interval [{boot.ci_low:+.4f}, {boot.ci_high:+.4f}])"
    assert decision_cell({"action": "rollback"}) == ""


def test_an_estimate_below_n_is_called_the_edge_not_a_number():
    """A skewed percentile interval can include 0 although the normal approximation clears it: then the advice
    does not claim a smaller test set would do."""
    from pfp_mlops.domain.detection_metrics import BootstrapResult

    ev_p, ev_c = result(records(NOISY[0])), result(records(NOISY[1]))
    boot = BootstrapResult(delta_mean=0.1, ci_low=0.0, ci_high=0.3, n_resamples=2000, seed=0, point_delta=0.1,
                           std_error=0.03, n_images=20)
    d = judge(ev_c, ev_p, boot, ValidateGate(), min_absolute=0.0)
    assert d.verdict == "inconclusive" and d.metrics["images_needed_estimate"] <= 20
    assert "at the edge of what 20 test images can show" in d.reasons[-1]
