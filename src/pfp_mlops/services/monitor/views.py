"""`pfp monitor status` (from the state file: no MLflow, no models) and `pfp monitor label-template`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pfp_mlops.services.context import Context
from pfp_mlops.services.monitor import logs
from pfp_mlops.services.monitor import state as st


def monitor_status(ctx: Context, *, limit: int = 10) -> dict[str, Any]:
    data = st.load(ctx.home)["models"].get(ctx.model_name, {})
    versions = []
    for v in sorted(data, key=int):
        vs = data[v]
        versions.append({"version": int(v), "run_id": vs.get("run_id"), "windows": len(vs.get("windows", [])),
                         "fail_streak": vs.get("fail_streak", 0),
                         "inconclusive_streak": vs.get("inconclusive_streak", 0),
                         "rolled_back": vs.get("rolled_back", False), "last": vs.get("windows", [])[-limit:]})
    return {"model": ctx.model_name, "state": str(st.state_path(ctx.home)), "versions": versions}


def label_template(ctx: Context, *, out: Path | None = None, log_dir: Path | None = None) -> dict[str, Any]:
    """The logged images that have no label yet, one CSV row each (unique by sha256), for an annotation tool.

    Columns: sha256, request_id, image_index, time, version, image (the stored copy, when serve kept it),
    label_path (where to put the YOLO label: `<sha256>.txt`, relative to the labels folder).
    """
    from pfp_mlops.services.monitor.run import paths

    log_dir, _s3 = logs.mirror_s3(ctx, log_dir)
    log_dir, lab_dir, lab_csv = paths(ctx, log_dir)
    read = logs.read_log(log_dir, model=ctx.model_name)
    labels = logs.read_labels(lab_dir, lab_csv, n_classes=len(ctx.cfg.data.classes), predictions=read.predictions)
    seen: set[str] = set()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["sha256", "request_id", "image_index", "time", "version", "image", "label_path"])
    for p in read.predictions:
        if p.image_sha256 in labels.by_sha or p.image_sha256 in seen:
            continue
        seen.add(p.image_sha256)
        img = logs.stored_image(log_dir, p.image_sha256)
        w.writerow([p.image_sha256, p.request_id, p.image_index, f"{p.ts:.3f}", p.version, img or "",
                    f"{p.image_sha256}.txt"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(buf.getvalue(), encoding="utf-8")
    return {"missing": len(seen), "labelled": len(labels.by_sha), "out": str(out) if out else None,
            "labels_dir": str(lab_dir), "csv": buf.getvalue() if out is None else None}
