"""The validation report: counts per split and class, problems by kind, groups and leaks, the dataset digest.

The same dict is printed as tables, returned with `--json`, written as `ingest_report.json` beside the CSV, and its
`source` block travels into the split manifest, the training run's dataset input and the version's lineage tags.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.domain.models import Result
from pfp_mlops.services.ingest.model import Problems, SourceDataset

FEW_INSTANCES = 10  # a class with fewer boxes than this in the whole dataset is reported


@dataclass
class IngestReport(Result):
    ok: bool
    format: str
    detected_by: str
    source: dict[str, Any]
    out: str
    classes: list[str]
    counts: dict[str, Any]
    class_counts: dict[str, dict[str, int]]
    groups: dict[str, Any]
    errors: dict[str, Any]
    warnings: dict[str, Any]
    split_policy: str
    meta: dict[str, Any] = field(default_factory=dict)
    link_mode: str | None = None
    next_steps: list[str] = field(default_factory=list)


def dataset_digest(ds: SourceDataset) -> str:
    """Content digest of what ingest writes: classes + every (destination, image sha256, boxes, source split)."""
    h = hashlib.sha256()
    h.update(("\0".join(ds.classes) + "\n").encode())
    for img in sorted(ds.images, key=lambda i: i.dest):
        h.update(f"{img.dest}\0{img.sha256}\0{img.split or ''}\0{img.label_text}\n".encode())
    return h.hexdigest()


def counts(ds: SourceDataset, problems: Problems) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Images and boxes per split, boxes per class per split; warnings for unlabelled images and rare classes."""
    per_split: dict[str, dict[str, int]] = defaultdict(lambda: {"images": 0, "boxes": 0, "without_labels": 0})
    class_counts: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(ds.classes, 0)
    for img in ds.images:
        s = img.split or "all"
        c = per_split[s]
        c["images"] += 1
        cc = class_counts.setdefault(s, dict.fromkeys(ds.classes, 0))
        if img.boxes is None:
            c["without_labels"] += 1
            problems.warn("no_labels", f"{img.rel}: no label file ({img.label_ref}): trained as background")
            continue
        if not img.boxes:
            c["without_labels"] += 1
            problems.warn("no_labels", f"{img.rel}: no boxes: trained as background")
        c["boxes"] += len(img.boxes)
        for b in img.boxes:
            name = ds.classes[b[0]]
            cc[name] += 1
            total[name] += 1
    for name, n in total.items():
        if n == 0:
            problems.warn("class_empty", f"class {name!r} has no instance")
        elif n < FEW_INSTANCES:
            problems.warn("class_few", f"class {name!r} has only {n} instances")
    out = {"images": len(ds.images), "boxes": sum(v["boxes"] for v in per_split.values()),
           "per_split": dict(sorted(per_split.items()))}
    return out, dict(sorted(class_counts.items()))


def source_block(ds: SourceDataset, digest: str, n: dict[str, Any]) -> dict[str, Any]:
    """The lineage record: what the data is and where it came from (no absolute home paths beyond the root)."""
    return {"format": ds.format, "root": ds.root, "roots": ds.roots, "images": n["images"], "boxes": n["boxes"],
            "per_split": {s: v["images"] for s, v in n["per_split"].items()}, "classes": ds.classes,
            "dataset_digest": digest, "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **({"roboflow": ds.meta["roboflow"]} if "roboflow" in ds.meta else {})}


def summary_line(problems: Problems, limit: int = 3) -> str:
    """The one error line: counts by kind and the first few examples (the report has up to 20 per kind)."""
    kinds = ", ".join(f"{k} {problems.counts[k]}" for k in sorted(problems.errors))
    examples = [m for k in sorted(problems.errors) for m in problems.errors[k]][:limit]
    more = problems.n_errors() - len(examples)
    return (f"ingest refused, nothing written: {problems.n_errors()} errors ({kinds}): " + "; ".join(examples)
            + (f"; … and {more} more (--json lists up to 20 per kind)" if more > 0 else ""))
