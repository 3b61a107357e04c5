"""Gates: pure functions from evaluation results to a Decision with human-readable reasons.

The validate rule (challenger vs champion on the same test split), for metric m and threshold r or a:
    relative mode: promote iff m_c >= m_p * (1 + r)   and m_c > m_p
    absolute mode: promote iff m_c >= m_p + a         and m_c > m_p
`m_c > m_p` makes ties never promote (also with r = 0) and defines the champion-at-0 case: any positive score
beats 0. A tolerance of 1e-9 absorbs float error so "exactly +1 %" passes. NaN or missing metrics never promote.
No champion (first deployment): only the absolute minimum applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pfp_mlops.domain.models import Decision, EvalResult

EPS = 1e-9


def _bad(x: float | None) -> bool:
    return x is None or not isinstance(x, int | float) or math.isnan(x) or math.isinf(x)


def register_gate(ev: EvalResult, *, min_map50: float) -> Decision:
    """Minimum absolute score on TEST before a model may enter the registry."""
    m = ev.map50
    metrics = {"map50": m, "min_map50": min_map50}
    if _bad(m):
        return Decision("register", False, [f"test mAP50 is missing or NaN ({m!r})"], metrics)
    if m + EPS < min_map50:
        return Decision("register", False, [f"test mAP50 {m:.4f} < minimum {min_map50:.4f}"], metrics)
    return Decision("register", True, [f"test mAP50 {m:.4f} >= minimum {min_map50:.4f}"], metrics)


def promote_gate(
    ev: EvalResult,
    *,
    min_map50: float,
    min_recall: float = 0.0,
    min_class_ap50: float = 0.0,
    max_latency_ms: float | None = None,
) -> Decision:
    """Staging requirements on several metrics; every failing requirement is listed."""
    reasons_fail: list[str] = []
    reasons_ok: list[str] = []

    def check(label: str, value: float | None, bound: float, higher_is_better: bool = True) -> None:
        if _bad(value):
            reasons_fail.append(f"{label} is missing or NaN")
            return
        assert value is not None
        ok = value + EPS >= bound if higher_is_better else value <= bound + EPS
        op = (">=" if ok else "<") if higher_is_better else ("<=" if ok else ">")
        (reasons_ok if ok else reasons_fail).append(f"{label} {value:.4f} {op} {bound:.4f}")

    check("test mAP50", ev.map50, min_map50)
    check("test recall", ev.recall, min_recall)
    if min_class_ap50 > 0:
        for cls, ap in sorted(ev.per_class_ap50.items()):
            check(f"AP50[{cls}]", ap, min_class_ap50)
    if max_latency_ms is not None:
        check("latency ms/img", ev.latency_ms, max_latency_ms, higher_is_better=False)
    metrics = {"map50": ev.map50, "recall": ev.recall, "latency_ms": ev.latency_ms}
    if reasons_fail:
        return Decision("promote", False, reasons_fail, metrics)
    return Decision("promote", True, reasons_ok, metrics)


def required_score(champion: float, *, mode: str, min_improvement: float) -> float:
    """The score a challenger must reach to replace a champion."""
    if mode == "relative":
        return champion * (1.0 + min_improvement)
    if mode == "absolute":
        return champion + min_improvement
    raise ValueError(f"unknown gate mode {mode!r}")


def validate_gate(
    challenger: EvalResult | Mapping[str, float] | None,
    champion: EvalResult | Mapping[str, float] | None,
    *,
    metric: str = "map50",
    mode: str = "relative",
    min_improvement: float = 0.01,
    min_absolute: float = 0.0,
    max_class_drop: float | None = None,
) -> Decision:
    """Challenger (staging) against champion (production), both evaluated on the same test split."""
    c = _get(challenger, metric)
    p = _get(champion, metric) if champion is not None else None
    metrics: dict[str, object] = {"metric": metric, "challenger": c, "champion": p, "mode": mode,
                                  "min_improvement": min_improvement}
    if challenger is None or _bad(c):
        return Decision("validate", False, [f"challenger {metric} is missing or NaN: never promote"], metrics,
                        verdict="reject")
    assert c is not None
    if champion is None:
        if c + EPS >= min_absolute:
            return Decision("validate", True,
                            [f"no production model yet: first deployment; {metric} {c:.4f} >= minimum "
                             f"{min_absolute:.4f}"],
                            metrics, verdict="promote")
        return Decision("validate", False,
                        [f"no production model yet, but {metric} {c:.4f} < minimum {min_absolute:.4f}"],
                        metrics, verdict="reject")
    if _bad(p):
        return Decision("validate", False, [f"champion {metric} is missing or NaN: never promote"], metrics,
                        verdict="reject")
    assert p is not None
    need = required_score(p, mode=mode, min_improvement=min_improvement)
    metrics["required"] = need
    delta = c - p
    rel = (delta / p) if p > 0 else math.inf if delta > 0 else 0.0
    metrics["delta"] = delta
    rule = f"+{min_improvement:.2%} relative" if mode == "relative" else f"+{min_improvement:.4f} absolute"
    reasons: list[str] = []
    passed = c + EPS >= need and c > p
    if passed:
        reasons.append(f"{metric} {c:.4f} vs production {p:.4f} ({_fmt_rel(rel)}): meets {rule} (needs >= {need:.4f})")
    elif c <= p:
        reasons.append(f"{metric} {c:.4f} vs production {p:.4f} ({_fmt_rel(rel)}): not better than production")
    else:
        reasons.append(f"{metric} {c:.4f} vs production {p:.4f} ({_fmt_rel(rel)}): below {rule} (needs >= {need:.4f})")
    if c + EPS < min_absolute:
        passed = False
        reasons.append(f"{metric} {c:.4f} < absolute minimum {min_absolute:.4f}")
    if max_class_drop is not None:
        drops = _class_drops(challenger, champion, max_class_drop)
        if drops:
            passed = False
            reasons.extend(drops)
    return Decision("validate", passed, reasons, metrics, verdict="promote" if passed else "reject")


def regression_check(
    current: EvalResult, previous: EvalResult, *, metric: str = "map50", tolerance: float = 0.0
) -> Decision:
    """Production against the previous production on current data: a regression when worse beyond tolerance."""
    c, p = _get(current, metric), _get(previous, metric)
    metrics = {"metric": metric, "production": c, "previous": p, "tolerance": tolerance}
    if _bad(c) or _bad(p):
        return Decision("regression", False, [f"{metric} missing or NaN: cannot judge a regression"], metrics,
                        verdict="inconclusive")
    assert c is not None and p is not None
    if c + tolerance + EPS < p:
        return Decision("regression", True,
                        [f"production {metric} {c:.4f} < previous production {p:.4f} - tolerance {tolerance:.4f}"],
                        metrics, verdict="rollback")
    return Decision("regression", False,
                    [f"production {metric} {c:.4f} is not worse than previous {p:.4f} beyond {tolerance:.4f}"],
                    metrics, verdict="keep")


def _get(ev: EvalResult | Mapping[str, float] | None, metric: str) -> float | None:
    if ev is None:
        return None
    if isinstance(ev, Mapping):
        v = ev.get(metric)
    else:
        v = getattr(ev, metric, None)
    return float(v) if isinstance(v, int | float) else None


def _class_drops(challenger: object, champion: object, tolerance: float) -> list[str]:
    cc = getattr(challenger, "per_class_ap50", None) or {}
    pc = getattr(champion, "per_class_ap50", None) or {}
    out = []
    for cls in sorted(set(cc) & set(pc)):
        if _bad(cc[cls]) or _bad(pc[cls]):
            continue
        if cc[cls] + tolerance + EPS < pc[cls]:
            out.append(f"AP50[{cls}] drops {pc[cls]:.4f} -> {cc[cls]:.4f} (more than {tolerance:.4f})")
    return out


def _fmt_rel(rel: float) -> str:
    return "+inf %" if math.isinf(rel) else f"{rel:+.2%}"


def leaked_test_items(trained: Mapping[str, list[str]], current: Mapping[str, list[str]]) -> list[str]:
    """Current TEST items that a model saw in training: same path or same image bytes in its train/valid sets.

    Both mappings are split manifests' `items`: image path → [content hash, split].
    """
    seen_paths = {p for p, (_, s) in trained.items() if s in ("train", "valid")}
    seen_hashes = {h for h, s in trained.values() if s in ("train", "valid")}
    return sorted(p for p, (h, s) in current.items() if s == "test" and (p in seen_paths or h in seen_hashes))
