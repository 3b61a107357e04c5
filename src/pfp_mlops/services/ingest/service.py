"""run_ingest: read → check classes → hash and check images → groups and leaks → report → write (only if clean)."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.labels import format_rows
from pfp_mlops.services.ingest import checks, report, writer
from pfp_mlops.services.ingest.detect import read_source
from pfp_mlops.services.ingest.model import SourceDataset
from pfp_mlops.settings import PipelineConfig


class IngestFailed(DataError):
    """Hard errors in the source: exit 2, nothing written; the report rides along (`decision`) for the table and
    `--json`."""

    def __init__(self, message: str, *, report: report.IngestReport) -> None:
        super().__init__(message)
        self.decision = report


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off while an ingest runs, back as it was after (also a decorator).

    A 100,000-image COCO file parses into ~500,000 dicts and lists, and every 700 new container objects trigger a
    collection that walks the young ones, and every few of those the whole heap: ~0.6 s of a 5 s ingest (the
    parse takes 0.6 s with it, 0.2 s without). What an ingest builds holds no reference cycles (JSON values, the
    images, their boxes), so reference counting frees all of it; the collector has nothing to find.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@_without_cyclic_gc()
def run_ingest(cfg: PipelineConfig, source: Path, *, fmt: str = "auto", out: Path | None = None,
               keep_source_splits: bool = False, allow_leaks: bool = False, mode: str = "auto",
               group_regex: str | None = None, keep_crowd: bool = False, force: bool = False, workers: int = 0,
               say: Callable[[str], None] = lambda _m: None) -> report.IngestReport:
    """Read, check, report and (when clean) write the source into the data folder (the cyclic GC off meanwhile)."""
    regex = None
    if workers < 0:
        raise DataError(f"--workers {workers}: must be 0 (auto) or a number of processes")
    if group_regex:
        try:
            regex = re.compile(group_regex)
        except re.error as e:
            raise DataError(f"--group-regex: not a regular expression ({e})") from None
    target = out or cfg.paths.data_dir
    if not source.exists() and not source.is_symlink():
        raise DataError(f"{source}: source not found")
    writer.check_target(target, source, force=force)
    ds = read_source(source, fmt, keep_crowd=keep_crowd, project_classes=list(cfg.data.classes))
    say(f"detected {ds.format} ({ds.detected_by}) at {ds.root}")
    for split, paths in ds.roots.items():
        say(f"  {split}: {', '.join(paths)}")
    _check_classes(cfg, ds, target)
    _unique_dests(ds)
    problems = ds.problems
    say(f"checking {len(ds.images)} images")
    checks.inspect_images(ds.images, problems, min_side=max(cfg.train.imgsz // 8, 1), workers=workers)
    groups = checks.assign_groups(ds.images, regex)
    group_stats = checks.leaks_and_duplicates(ds.images, groups)
    for leak in group_stats["leaks"]:
        where = ", ".join(f"{s} {n}" for s, n in leak["splits"].items())
        msg = f"group {leak['group']!r} straddles the export's splits ({where}): {', '.join(leak['images'][:3])}"
        if keep_source_splits and not allow_leaks:
            problems.error("leak", msg)
        elif keep_source_splits:
            problems.warn("leak", msg + " (--allow-leaks)")
    dup = group_stats["duplicates"]
    for ex in dup["examples"]:
        problems.warn("duplicate", f"byte-identical images (one group): {', '.join(ex)}")
    if dup["across_splits"] or dup["within_split"]:
        problems.counts["duplicate"] = dup["across_splits"] + dup["within_split"]
    _drop_invisible_boxes(ds)
    n, class_counts = report.counts(ds, problems)
    for img in ds.images:
        img.label_text = format_rows(img.boxes) if img.boxes else ""
    digest = report.dataset_digest(ds)
    rep = report.IngestReport(
        ok=problems.n_errors() == 0, format=ds.format, detected_by=ds.detected_by,
        source=report.source_block(ds, digest, n), out=str(target), classes=ds.classes, counts=n,
        class_counts=class_counts, groups=group_stats, errors=problems.to_dict(problems.errors),
        warnings=problems.to_dict(problems.warnings),
        split_policy="source" if keep_source_splits else "hash", meta=ds.meta,
        next_steps=_next_steps(cfg, target, keep_source_splits))
    if not rep.ok:
        raise IngestFailed(report.summary_line(problems), report=rep)
    say(f"writing {len(ds.images)} images to {target}")
    classes_doc: dict[str, Any] = {"names": ds.classes, "nc": len(ds.classes),
                                   "source": {"format": ds.format, "root": ds.root}}
    if "category_map" in ds.meta:
        classes_doc["category_map"] = ds.meta["category_map"]
        classes_doc["dropped_categories"] = ds.meta["dropped_categories"]
    rep.link_mode = writer.write_dataset(target, ds.images, groups, mode=mode, classes_doc=classes_doc,
                                         report=rep.to_dict(), workers=workers)
    return rep


def _check_classes(cfg: PipelineConfig, ds: SourceDataset, target: Path) -> None:
    """Never a silent re-map: the project's class list (data.classes, or the file data.classes_file names when it
    exists) must equal the source's, in order. A classes_file not written yet is the first ingest: no check."""
    cf = cfg.data.classes_file
    if cf is not None and not cf.is_file():
        return
    project = list(cfg.data.classes)
    if project == ds.classes:
        return
    where = f"data.classes_file {cf}" if cf is not None else "data.classes"
    hint = f"data.classes_file: {target / writer.CLASSES_NAME}" if cf is None else "a new data.classes_file"
    raise DataError(f"the source's classes {ds.classes} differ from the project's {where} {project}: pfp never "
                    f"re-maps class ids; set {hint} (ingest writes it) or data.classes to the source's list")


def _drop_invisible_boxes(ds: SourceDataset) -> None:
    """A box narrower than the 6 decimals a label row keeps would be written as `w=0`, which `pfp split` refuses."""
    for img in ds.images:
        if img.boxes and any(b[3] < 5e-7 or b[4] < 5e-7 for b in img.boxes):
            img.boxes = [b for b in img.boxes if b[3] >= 5e-7 and b[4] >= 5e-7]
            ds.problems.warn("zero_area", f"{img.rel}: a box under 1e-6 of the image dropped")


def _unique_dests(ds: SourceDataset) -> None:
    """Two source files mapped to one destination (same name in two folders of one split) get `__<n>` suffixes."""
    seen: dict[str, int] = {}
    for img in ds.images:
        key = img.dest.lower()
        if key in seen:
            seen[key] += 1
            stem, dot, ext = img.dest.rpartition(".")
            img.dest = f"{stem}__{seen[key]}{dot}{ext}"
            ds.problems.warn("renamed", f"{img.rel}: name taken in its split; written as images/{img.dest}")
        else:
            seen[key] = 0


def _next_steps(cfg: PipelineConfig, target: Path, keep_source_splits: bool) -> list[str]:
    steps = []
    if cfg.data.classes_file is None:
        steps.append(f"set data.classes_file: {target / writer.CLASSES_NAME} in the config to use its class list")
    if keep_source_splits and not cfg.split.use_source_split:
        steps.append("set split.use_source_split: true so `pfp split` keeps the export's splits")
    if not keep_source_splits and cfg.split.use_source_split:
        steps.append("split.use_source_split is true: `pfp split` will keep the export's splits, unchecked for "
                     "leaks (ingest with --keep-source-splits checks them)")
    steps.append("pfp split (or pfp run-all)")
    return steps
