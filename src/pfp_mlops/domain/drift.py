"""Label-free drift signals: histograms of what a detector outputs, compared with a reference by Jensen–Shannon.

Why Jensen–Shannon divergence and not PSI: a live window is small (tens to hundreds of images) and many bins of a
per-class histogram are empty in one of the two samples. PSI is `Σ (p − q) ln(p / q)`: infinite for an empty bin
unless an arbitrary epsilon is added, and unbounded, so a threshold means something different for every bin count.
JS divergence (base 2) compares both to their mixture: always finite, symmetric, in [0, 1] (0 = same histogram,
1 = disjoint supports), so one threshold reads the same for every signal. Pure numpy, no I/O.

Signals (names are MLflow metric names after `drift.`):
* `confidence` — all box confidences, 20 bins over [0, 1];
* `empty_rate` — images with no detection vs with some (2 bins);
* `detections.<class>` — boxes of the class per image, 0…9 and 10+ (11 bins);
* `box_area.<class>` — sqrt(box area / image area), 20 bins over [0, 1];
* `box_aspect.<class>` — log2(width / height) clipped to [−3, 3], 24 bins;
* `image_size` — log2(sqrt(width × height)) over [4, 13] (16 px … 8 k px), a bin per quarter octave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pfp_mlops.domain.prediction_log import Box


class _Image(Protocol):
    """A logged prediction (prediction_log.LoggedPrediction) or anything with its size and boxes."""

    width: int
    height: int
    boxes: Sequence[Box]


_CONF_EDGES = np.linspace(0.0, 1.0, 21)
_AREA_EDGES = np.linspace(0.0, 1.0, 21)
_ASPECT_EDGES = np.linspace(-3.0, 3.0, 25)
_SIZE_EDGES = np.arange(4.0, 13.0 + 1e-9, 0.25)
_MAX_COUNT = 10


@dataclass(frozen=True)
class SignalScore:
    name: str
    score: float | None  # JS divergence; None: too few observations on one side
    threshold: float
    n_window: int
    n_reference: int

    @property
    def alert(self) -> bool:
        return self.score is not None and self.score > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "threshold": self.threshold, "alert": self.alert,
                "n_window": self.n_window, "n_reference": self.n_reference}


def _hist(values: Sequence[float] | np.ndarray, edges: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    return np.histogram(v, bins=edges)[0].astype(np.int64)


def histograms(images: Sequence[_Image], class_names: Sequence[str]) -> dict[str, list[int]]:
    """Every signal's histogram of one sample of predictions (counts, JSON-ready: the reference is cached so)."""
    n_cls = len(class_names)
    confs: list[float] = []
    per_class_counts = np.zeros((len(images), n_cls), dtype=np.int64)
    areas: list[list[float]] = [[] for _ in range(n_cls)]
    aspects: list[list[float]] = [[] for _ in range(n_cls)]
    sizes = np.zeros(len(images))
    empty = 0
    for i, im in enumerate(images):
        sizes[i] = np.log2(np.sqrt(float(im.width) * float(im.height)))
        if not im.boxes:
            empty += 1
        img_area = float(im.width) * float(im.height)
        for b in im.boxes:
            confs.append(b.confidence)
            c = int(b.class_id)
            if not 0 <= c < n_cls:
                continue
            per_class_counts[i, c] += 1
            w, h = max(b.x2 - b.x1, 0.0), max(b.y2 - b.y1, 0.0)
            areas[c].append(float(np.sqrt(w * h / img_area)) if img_area > 0 else 0.0)
            if w > 0 and h > 0:
                aspects[c].append(float(np.log2(w / h)))
    out: dict[str, list[int]] = {
        "confidence": _hist(confs, _CONF_EDGES).tolist(),
        "empty_rate": [empty, len(images) - empty],
        "image_size": _hist(sizes, _SIZE_EDGES).tolist(),
    }
    for c, name in enumerate(class_names):
        counts = np.minimum(per_class_counts[:, c], _MAX_COUNT)
        out[f"detections.{name}"] = np.bincount(counts, minlength=_MAX_COUNT + 1).tolist()
        out[f"box_area.{name}"] = _hist(areas[c], _AREA_EDGES).tolist()
        out[f"box_aspect.{name}"] = _hist(aspects[c], _ASPECT_EDGES).tolist()
    return out


def js_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Jensen–Shannon divergence, base 2, of two histograms (normalised here): 0 identical … 1 disjoint."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms of different shapes {p.shape} and {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("an empty histogram has no distribution")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(min(max((kl(p) + kl(q)) / 2, 0.0), 1.0))


def score_signals(window: Mapping[str, Sequence[int]], reference: Mapping[str, Sequence[int]], *, threshold: float,
                  thresholds: Mapping[str, float] | None = None, min_samples: int = 20) -> list[SignalScore]:
    """Each signal of the window against the reference; None where either side has < min_samples observations."""
    out = []
    for name in sorted(window):
        w = np.asarray(window[name])
        r = np.asarray(reference.get(name, np.zeros_like(w)))
        limit = float((thresholds or {}).get(name, threshold))
        nw, nr = int(w.sum()), int(r.sum())
        score = js_divergence(w, r) if nw >= min_samples and nr >= min_samples and w.shape == r.shape else None
        out.append(SignalScore(name, score, limit, nw, nr))
    return out
