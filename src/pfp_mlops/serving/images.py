"""The images of one request: bytes, sha256, size and format, checked before the model sees them.

The pyfunc model takes each `image` value as a local file path or base64-encoded bytes; this module reads the
same values the same way so that the prediction log can name each image by the hash of its bytes, and so that a
bad image gets a clear 400 naming its index instead of MLflow's generic "unexpected error".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any

from pfp_mlops.adapters.mlflow_scoring import bad_request


@dataclass(frozen=True)
class RequestImage:
    index: int
    data: bytes
    sha256: str
    width: int
    height: int
    ext: str  # png, jpg, ... (for the content-addressed image store)


def image_values(data: Any) -> list[Any]:
    """The `image` column of a parsed request (a DataFrame, a dict of columns, or a list of records)."""
    if hasattr(data, "columns"):
        if "image" not in data.columns:
            raise bad_request("input must have a column named 'image' (a file path or base64-encoded image bytes)")
        return list(data["image"])
    if isinstance(data, dict) and "image" in data:
        col = data["image"]
        return [col] if isinstance(col, str | bytes) or not hasattr(col, "__len__") else list(col)
    raise bad_request("input must have a column named 'image' (a file path or base64-encoded image bytes)")


def read_image(index: int, value: Any) -> RequestImage:
    """One value → its bytes and header facts; an unreadable or non-image value is a 400 naming it."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str) and value and len(value) < 4096 and os.path.isfile(value):
        with open(value, "rb") as fh:
            data = fh.read()
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"image {index}: neither an existing file path nor valid base64") from None
    else:
        raise bad_request(f"image {index}: expected a string (file path or base64), got {type(value).__name__}")
    if not data:
        raise bad_request(f"image {index}: empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = (im.format or "bin").lower()
    except (UnidentifiedImageError, OSError, ValueError, ImportError):  # Ultralytics' Image.open patch: ImportError
        raise bad_request(f"image {index}: not a readable image (PNG, JPEG, …)") from None
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
    return RequestImage(index, data, hashlib.sha256(data).hexdigest(), int(width), int(height), ext)


def read_images(data: Any) -> list[RequestImage]:
    return [read_image(i, v) for i, v in enumerate(image_values(data))]


def boxes_by_image(predictions: Any, count: int) -> list[list[dict[str, Any]]]:
    """The model's detection rows (column `image` = index in the request) grouped per image, log schema 1."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    if predictions is None or not hasattr(predictions, "itertuples") or len(predictions) == 0:
        return out
    for row in predictions.itertuples(index=False):
        i = int(row.image)
        if 0 <= i < count:
            out[i].append({"class_id": int(row.class_id), "class_name": str(row.class_name),
                           "confidence": round(float(row.confidence), 6),
                           "xyxy": [round(float(v), 3) for v in (row.x1, row.y1, row.x2, row.y2)]})
    return out
