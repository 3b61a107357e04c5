"""The one YOLO label parser: the text of one label file → boxes, and every problem with its line number.

A label row is `class cx cy w h` (normalised to [0, 1]), or, in Ultralytics' segmentation format, `class x1 y1 x2 y2
x3 y3 …` (a polygon, read as its bounding box when `polygons=True`). Callers decide what a problem means:
`pfp split` refuses the first one, the evaluator refuses only rows it cannot read (Ultralytics tolerates
coordinates slightly outside the image), `pfp ingest` collects all of them into its report, the monitor reads
delayed labels. One parser means one reading of a label file across all of them.

Problem kinds (the `kind` of a `LabelProblem`):
    fields      wrong number of fields (not 5, and not a polygon when polygons are allowed)
    number      a field is not a number, or the class id is not an integer
    class       class id outside 0..n_classes-1
    range       a coordinate outside [0, 1]          (the box is still returned)
    zero_area   width or height <= 0                  (the box is still returned)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

UNREADABLE = frozenset({"fields", "number", "class"})  # the row yields no box


class Box(NamedTuple):
    line: int
    cls: int
    cx: float
    cy: float
    w: float
    h: float


class LabelProblem(NamedTuple):
    line: int
    kind: str
    message: str


def parse_label_text(text: str, *, n_classes: int | None = None,
                     polygons: bool = False) -> tuple[list[Box], list[LabelProblem]]:
    """Every box of one label file and every problem, in line order. Blank lines are skipped.

    The loop keeps a fast path for the valid 5-field row (100,000s of them per `pfp split`); anything doubtful is
    re-read by `_slow_row` for the exact problem.
    """
    boxes: list[Box] = []
    problems: list[LabelProblem] = []
    limit = n_classes if n_classes is not None else 1 << 62
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 5:
            try:
                cls = int(fields[0])
                cx, cy, w, h = float(fields[1]), float(fields[2]), float(fields[3]), float(fields[4])
            except ValueError:
                pass
            else:
                if 0 <= cls < limit and 0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0 and 0.0 < w <= 1.0 and 0.0 < h <= 1.0:
                    boxes.append(Box(n, cls, cx, cy, w, h))
                    continue
        _slow_row(fields, n, n_classes, polygons, boxes, problems)
    return boxes, problems


def _slow_row(fields: list[str], n: int, n_classes: int | None, polygons: bool, boxes: list[Box],
              problems: list[LabelProblem]) -> None:
    is_polygon = polygons and len(fields) >= 7 and len(fields) % 2 == 1
    if len(fields) != 5 and not is_polygon:
        expected = "'class cx cy w h'" + (" or a polygon 'class x1 y1 x2 y2 x3 y3 …'" if polygons else "")
        problems.append(LabelProblem(n, "fields", f"expected 5 fields {expected}, found {len(fields)}"))
        return
    try:
        values = [float(f) for f in fields]
        if not all(map(math.isfinite, values)):
            raise ValueError
    except ValueError:
        problems.append(LabelProblem(n, "number", "fields must be an integer class id and four numbers"))
        return
    if values[0] != int(values[0]):  # "1.0" is read as 1, as Ultralytics reads it
        problems.append(LabelProblem(n, "number", f"class id {fields[0]!r} is not an integer"))
        return
    cls = int(values[0])
    if cls < 0 or (n_classes is not None and cls >= n_classes):
        top = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        problems.append(LabelProblem(n, "class", f"class id {cls} out of range {top}"))
        return
    if is_polygon:
        xs, ys = values[1::2], values[2::2]
        coords = [("x", v) for v in xs] + [("y", v) for v in ys]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    else:
        cx, cy, w, h = values[1:]
        coords = [("cx", cx), ("cy", cy), ("w", w), ("h", h)]
    bad = next(((name, v) for name, v in coords if not 0.0 <= v <= 1.0), None)
    if bad is not None:
        problems.append(LabelProblem(n, "range", f"{bad[0]}={bad[1]:g} outside [0, 1] (coordinates must be "
                                                 "normalised)"))
    elif w <= 0 or h <= 0:
        problems.append(LabelProblem(n, "zero_area", f"zero-size box (w={w:g}, h={h:g})"))
    boxes.append(Box(n, cls, cx, cy, w, h))


ROW = "%d %.6f %.6f %.6f %.6f\n"


def format_row(cls: int, cx: float, cy: float, w: float, h: float) -> str:
    """One label row as pfp writes it (6 decimals: sub-pixel for images up to 10^6 px)."""
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def format_rows(boxes: Iterable[tuple[int, float, float, float, float]]) -> str:
    """A label file's text: `format_row` of each box, one per line (%-formatting: the same text, ~2× faster on
    the 200,000 boxes of a large ingest)."""
    return "".join([ROW % b for b in boxes])
