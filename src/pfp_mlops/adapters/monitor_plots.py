"""The monitoring series as a PNG (matplotlib on use only, Agg on the figure, as in adapters/plots.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

_COLOR = {"pass": "#2ca02c", "fail": "#d62728", "inconclusive": "#ff7f0e"}


def series_png(path: Path, *, steps: Sequence[int], performance: Mapping[str, Sequence[float | None]],
               drift: Mapping[str, Sequence[float | None]], verdicts: Sequence[str], drift_threshold: float,
               title: str) -> Path:
    """Top: mAP50 of the serving and the previous version and ΔmAP50 with its interval, coloured by verdict.
    Bottom: the largest drift scores against the threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 5.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_d = fig.subplots(2, 1, sharex=True)

    def xy(values: Sequence[float | None]) -> tuple[list[int], list[float]]:
        pts = [(s, v) for s, v in zip(steps, values, strict=False) if v is not None and v == v]
        return [p[0] for p in pts], [p[1] for p in pts]

    for name, style in (("map50", "-o"), ("previous_map50", "--s"), ("delta_map50", ":^")):
        if name in performance:
            ax.plot(*xy(performance[name]), style, label=name, ms=4)
    lo, hi = performance.get("delta_ci_low", []), performance.get("delta_ci_high", [])
    for s, a, b, v in zip(steps, lo, hi, verdicts, strict=False):
        if a is not None and b is not None:
            ax.vlines(s, a, b, color=_COLOR.get(v, "#888888"), lw=3, alpha=0.6)
    for s, v in zip(steps, verdicts, strict=False):
        ax.axvspan(s - 0.45, s + 0.45, color=_COLOR.get(v, "#888888"), alpha=0.08)
    ax.axhline(0.0, color="#444444", lw=0.8)
    ax.set_ylabel("mAP50 / Δ")
    ax.legend(loc="best", fontsize=7)
    ax.set_title("labelled performance (band: verdict)")
    top = sorted(drift, key=lambda k: -max((v for v in drift[k] if v is not None), default=0.0))[:6]
    for name in top:
        ax_d.plot(*xy(drift[name]), "-o", label=name, ms=3)
    ax_d.axhline(drift_threshold, color="#d62728", ls="--", lw=1, label="threshold")
    ax_d.set_ylabel("JS divergence")
    ax_d.set_xlabel("window (step)")
    ax_d.set_ylim(0, 1.02)
    ax_d.legend(loc="best", fontsize=7)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
