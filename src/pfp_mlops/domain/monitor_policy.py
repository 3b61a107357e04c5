"""The monitor's pure rules: cutting the log into windows, one window's verdict, and what a run of verdicts asks for.

Verdict of one window (ΔmAP50 = serving version − previous production, paired-bootstrap interval [low, high]):
* `fail` — high < −drop: the serving version is worse by more than `drop` on every resample;
* `inconclusive` — fewer than `min_labelled` labelled images, or the interval straddles −drop;
* `pass` — low ≥ −drop, or there is no previous production to compare with (nothing to roll back to).
Action over consecutive windows of one version (the Argo Rollouts / Flagger analysis shape): `failure_limit`
consecutive fails → rollback; `inconclusive_limit` consecutive inconclusive → alert; any other verdict breaks a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

Verdict = Literal["pass", "fail", "inconclusive"]
T = TypeVar("T")


@dataclass(frozen=True)
class WindowCut:
    """One window of one version: its id (stable across runs), bounds and the indexes of its predictions."""

    window_id: str
    start: float
    end: float
    indexes: tuple[int, ...]


def time_windows(ts: Sequence[float], size_s: float) -> list[WindowCut]:
    """Aligned buckets [k·size, (k+1)·size) of the sorted timestamps; ids are the bucket start (epoch seconds)."""
    out: list[WindowCut] = []
    cur: list[int] = []
    bucket = None
    for i, t in enumerate(ts):
        b = math.floor(t / size_s)
        if bucket is not None and b != bucket:
            out.append(WindowCut(f"t{int(bucket * size_s)}", bucket * size_s, (bucket + 1) * size_s, tuple(cur)))
            cur = []
        bucket = b
        cur.append(i)
    if cur and bucket is not None:
        out.append(WindowCut(f"t{int(bucket * size_s)}", bucket * size_s, (bucket + 1) * size_s, tuple(cur)))
    return out


def count_windows(ts: Sequence[float], size: int, *, first_number: int = 0) -> list[WindowCut]:
    """Consecutive groups of `size` predictions; only full groups (the tail waits for more data)."""
    out = []
    for k in range(len(ts) // size):
        idx = tuple(range(k * size, (k + 1) * size))
        out.append(WindowCut(f"n{first_number + k}", ts[idx[0]], ts[idx[-1]], idx))
    return out


def window_verdict(n_labelled: int, *, min_labelled: int, ci: tuple[float, float] | None, drop: float,
                   has_previous: bool) -> tuple[Verdict, str]:
    """One window's verdict and the sentence that explains it."""
    if n_labelled < min_labelled:
        return "inconclusive", f"{n_labelled} labelled images < min_labelled {min_labelled}"
    if not has_previous or ci is None:
        return "pass", "no previous production version to compare with"
    low, high = ci
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive", "the ΔmAP50 interval is undefined"
    if high < -drop:
        return "fail", f"ΔmAP50 interval [{low:+.4f}, {high:+.4f}] lies below −{drop:g}"
    if low < -drop:
        return "inconclusive", f"ΔmAP50 interval [{low:+.4f}, {high:+.4f}] straddles −{drop:g}"
    return "pass", f"ΔmAP50 interval [{low:+.4f}, {high:+.4f}] ≥ −{drop:g}"


def next_streaks(fail_streak: int, inconclusive_streak: int, verdict: Verdict) -> tuple[int, int]:
    """Consecutive fails / inconclusives after one more window (a pass resets both; each resets the other)."""
    if verdict == "fail":
        return fail_streak + 1, 0
    if verdict == "inconclusive":
        return 0, inconclusive_streak + 1
    return 0, 0


def action(fail_streak: int, inconclusive_streak: int, *, failure_limit: int,
           inconclusive_limit: int) -> Literal["rollback", "alert", "none"]:
    if fail_streak >= failure_limit:
        return "rollback"
    if inconclusive_streak >= inconclusive_limit:
        return "alert"
    return "none"
