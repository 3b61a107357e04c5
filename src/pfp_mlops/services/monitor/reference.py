"""The drift reference of a version: its own predictions on the test split, through its pyfunc (serving's path).

Computed once per (version, split fingerprint) and cached in `<PFP_HOME>/monitor/reference/`: the histograms of
`domain.drift` and how many images they came from. The evaluation records (`services/evaluation.py`) are not enough:
they hold classes and confidences at the evaluation threshold (0.001), not boxes at the serving threshold, nor sizes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.services.context import Context
from pfp_mlops.services.split import current_split


def test_images(manifest: dict[str, Any]) -> list[Path]:
    lst = Path(manifest.get("list_files", {}).get("test", ""))
    if not lst.is_file():
        raise DataError(f"the split manifest names no test list ({lst}); run `pfp split`")
    out = []
    for line in lst.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            p = Path(line) if Path(line).is_absolute() else (lst.parent / line)
            out.append(p.resolve())
    return sorted(out, key=str)


def reference(ctx: Context, version: int, predictor_for: Any) -> dict[str, Any]:
    """{"histograms", "n_images", "split_fingerprint", "version_split_fingerprint"} of `version`, cached."""
    from pfp_mlops.domain.drift import histograms
    from pfp_mlops.domain.prediction_log import Box

    manifest = current_split(ctx.cfg)
    fp = manifest["fingerprint"]
    path = ctx.home / "monitor" / "reference" / ctx.model_name / f"v{version}-{fp[:16]}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            pass
    images = test_images(manifest)
    ctx.say(f"monitor: reference predictions of v{version} on {len(images)} test images")
    preds = predictor_for(version).predict(images, batch=ctx.cfg.monitor.shadow_batch)

    class _Im:
        def __init__(self, w: int, h: int, boxes: tuple[Box, ...]) -> None:
            self.width, self.height, self.boxes = w, h, boxes

    hist = histograms([_Im(*p) for p in preds], list(ctx.cfg.data.classes))
    info = ctx.registry.version(ctx.model_name, version)
    data = {"version": version, "n_images": len(images), "split_fingerprint": fp,
            "version_split_fingerprint": info.tags.get("split_fingerprint"), "histograms": hist}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return data
