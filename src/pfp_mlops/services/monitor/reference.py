"""The drift reference of a version: its own predictions on the test split, through its pyfunc (serving's path).

Computed once per version, cached in `<PFP_HOME>/monitor/reference/` and on the version's monitoring run: the
histograms of `domain.drift`, how many images they came from, and which split (beside the version's own split
fingerprint, so a reference on another split than the version was registered with is visible).
The evaluation records (`services/evaluation.py`) are not enough:
they hold classes and confidences at the evaluation threshold (0.001), not boxes at the serving threshold, nor sizes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.models import SplitManifest
from pfp_mlops.services.context import Context


def test_images(manifest: SplitManifest) -> list[Path]:
    lst = manifest.list_file("test")
    if not lst.is_file():
        raise DataError(f"the split manifest names no test list ({lst}); run `pfp split`")
    out = []
    for line in lst.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            p = Path(line) if Path(line).is_absolute() else (lst.parent / line)
            out.append(p.resolve())
    return sorted(out, key=str)


def reference(ctx: Context, version: int, predictor_for: Any, store: Any = None,
              run_id: str | None = None) -> dict[str, Any] | None:
    """{"histograms", "n_images", "split_fingerprint", "version_split_fingerprint"} of `version`, computed once.

    Looked up in order: the local cache, the version's monitoring run (artifact `reference/v<N>.json`, so a monitor
    host without the dataset uses the one computed where the data is), else computed from the current split's test
    images and stored in both. None when none exists and there is no split here: drift is then not scored.
    """
    from pfp_mlops.domain.drift import histograms
    from pfp_mlops.domain.prediction_log import Box
    from pfp_mlops.services.split import read_manifest

    fname = f"v{version}.json"
    path = ctx.home / "monitor" / "reference" / ctx.model_name / fname
    for attempt in ("local", "mlflow"):
        if attempt == "mlflow" and store is not None and run_id is not None:
            store.download(run_id, f"reference/{fname}", path.parent)
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                path.unlink(missing_ok=True)
    manifest = read_manifest(ctx.cfg.paths.dataset_dir)
    if manifest is None:
        return None
    images = test_images(manifest)
    ctx.say(f"monitor: reference predictions of v{version} on {len(images)} test images")
    preds = predictor_for(version).predict(images, batch=ctx.cfg.monitor.shadow_batch)

    class _Im:
        def __init__(self, w: int, h: int, boxes: tuple[Box, ...]) -> None:
            self.width, self.height, self.boxes = w, h, boxes

    hist = histograms([_Im(*p) for p in preds], list(ctx.cfg.data.classes))
    info = ctx.registry.version(ctx.model_name, version)
    data = {"version": version, "n_images": len(images), "split_fingerprint": manifest.fingerprint,
            "version_split_fingerprint": info.tags.get("split_fingerprint"), "histograms": hist}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    if store is not None and run_id is not None:
        store.log_file(run_id, path, "reference")
    return data
