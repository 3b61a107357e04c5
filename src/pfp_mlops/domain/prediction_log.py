"""One line of the prediction log (CONTRACTS §3, schema 1), parsed and checked. Pure: no files, no clocks.

`pfp serve` writes one JSON object per image; `pfp monitor` reads them back. A line that does not follow the schema
raises `BadLine` with the reason, and the reader counts it instead of stopping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SCHEMA = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BadLine(ValueError):
    """A log line that is not a schema-1 prediction record (the message says why)."""


@dataclass(frozen=True)
class Box:
    class_id: int
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class LoggedPrediction:
    """One image a served model predicted on."""

    request_id: str
    image_index: int
    ts: float
    model: str
    version: int
    alias: str | None
    image_sha256: str
    width: int
    height: int
    latency_ms: float | None
    boxes: tuple[Box, ...]

    @property
    def key(self) -> tuple[float, str, int]:
        """Total order of the log: time, then request, then position in the request."""
        return (self.ts, self.request_id, self.image_index)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "request_id": self.request_id, "image_index": self.image_index, "ts": self.ts,
                "model": self.model, "version": self.version, "alias": self.alias,
                "image_sha256": self.image_sha256, "width": self.width, "height": self.height,
                "latency_ms": self.latency_ms,
                "boxes": [{"class_id": b.class_id, "confidence": b.confidence, "xyxy": [b.x1, b.y1, b.x2, b.y2]}
                          for b in self.boxes]}


def parse_record(obj: Any) -> LoggedPrediction:
    """A decoded JSON line → LoggedPrediction; BadLine naming the first problem."""
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    if obj.get("schema") != SCHEMA:
        raise BadLine(f"schema {obj.get('schema')!r} (expected {SCHEMA})")
    try:
        version = _int(obj["version"], "version", minimum=1)
        sha = str(obj["image_sha256"]).lower()
        if not _HEX64.match(sha):
            raise BadLine("image_sha256 is not 64 hex digits")
        boxes = []
        for b in obj.get("boxes") or []:
            xyxy = [float(v) for v in b["xyxy"]]
            if len(xyxy) != 4:
                raise BadLine("a box's xyxy needs 4 numbers")
            boxes.append(Box(_int(b["class_id"], "class_id"), float(b["confidence"]), *xyxy))
        ts = float(obj["ts"])
        if ts != ts:
            raise BadLine("ts is NaN")
        latency = obj.get("latency_ms")
        return LoggedPrediction(
            request_id=str(obj["request_id"]), image_index=_int(obj.get("image_index", 0), "image_index"),
            ts=ts, model=str(obj["model"]), version=version, alias=obj.get("alias"), image_sha256=sha,
            width=_int(obj["width"], "width", minimum=1), height=_int(obj["height"], "height", minimum=1),
            latency_ms=None if latency is None else float(latency), boxes=tuple(boxes))
    except KeyError as e:
        raise BadLine(f"missing field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, BadLine):
            raise
        raise BadLine(f"bad value: {str(e)[:80]}") from None


def _int(v: Any, name: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise BadLine(f"{name} is not an integer")
    try:
        i = int(v)
    except ValueError:
        raise BadLine(f"{name} is not an integer") from None
    if i != float(v) or i < minimum:
        raise BadLine(f"{name} {v!r} is not an integer >= {minimum}")
    return i
