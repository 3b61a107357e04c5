"""Pictures logged with decisions. matplotlib is imported here only, on use; figures render with Agg (no display)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path


def comparison_png(
    path: Path,
    *,
    class_names: Sequence[str],
    champion_ap50: Mapping[str, float],
    challenger_ap50: Mapping[str, float],
    champion_label: str,
    challenger_label: str,
    delta: float,
    ci_low: float,
    ci_high: float,
    required: float,
    confidence: float,
    verdict: str,
    title: str,
    decision_mode: str | None = None,
) -> Path:
    """Champion vs challenger: AP50 per class (bars) and ΔmAP50 with its bootstrap interval against the bar.

    `decision_mode: guarded` also marks 0 as the line the whole interval must clear (the point rule holds the bar).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(class_names)
    fig = Figure(figsize=(9.0, 3.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # Agg on this figure only: no pyplot, no global backend switch, no display needed
    ax_cls, ax_delta = fig.subplots(1, 2, width_ratios=[max(len(names), 2), 2])

    def ap(values: Mapping[str, float], n: str) -> float:
        v = values.get(n)
        return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    xs = range(len(names))
    width = 0.38
    ax_cls.bar([x - width / 2 for x in xs], [ap(champion_ap50, n) for n in names], width,
               label=champion_label, color="#8c8c8c")
    ax_cls.bar([x + width / 2 for x in xs], [ap(challenger_ap50, n) for n in names], width,
               label=challenger_label, color="#1f77b4")
    ax_cls.set_xticks(list(xs), names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax_cls.set_ylim(0, 1.05)
    ax_cls.set_ylabel("AP50")
    ax_cls.set_title("AP50 per class (test split)")
    ax_cls.legend(loc="upper right", fontsize=8)

    color = {"promote": "#2ca02c", "reject": "#d62728"}.get(verdict, "#ff7f0e")
    ax_delta.errorbar([0], [delta], yerr=[[max(delta - ci_low, 0.0)], [max(ci_high - delta, 0.0)]], fmt="o",
                      color=color, capsize=8, lw=2, label=f"ΔmAP50, {confidence:.0%} interval")
    guarded = decision_mode == "guarded"
    ax_delta.axhline(0.0, color="#444444", lw=1.2 if guarded else 0.8,
                     label="0: the interval must clear it" if guarded else None)
    ax_delta.axhline(required, color="#444444", ls="--", lw=1,
                     label=f"point bar +{required:.4f}" if guarded else f"required +{required:.4f}")
    ax_delta.set_xlim(-1, 1)
    ax_delta.set_xticks([])
    span = max(abs(ci_low), abs(ci_high), abs(required), 0.01)
    ax_delta.set_ylim(-1.25 * span, 1.25 * span)
    ax_delta.set_title(f"ΔmAP50 → {verdict}" + (f" ({decision_mode})" if decision_mode else ""))
    ax_delta.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
