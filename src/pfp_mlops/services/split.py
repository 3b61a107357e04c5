"""`pfp split`: deterministic train/valid/test lists, the YOLO data YAML, a manifest and its fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.models import SPLITS, SplitManifest
from pfp_mlops.domain.split_policy import assign_all, split_fingerprint
from pfp_mlops.fsutil import atomic_write_text
from pfp_mlops.services.dataset import check_items, read_csv
from pfp_mlops.settings import PipelineConfig

MANIFEST = "split_manifest.json"
INGEST_REPORT = "ingest_report.json"  # written by `pfp ingest` beside the CSV


def csv_path(cfg: PipelineConfig) -> Path:
    return cfg.paths.data_dir / cfg.data.csv


def run_split(cfg: PipelineConfig) -> SplitManifest:
    """Read and check the dataset, assign splits, write everything atomically, return the manifest."""
    data_root = cfg.paths.data_dir.resolve()
    csv_file = csv_path(cfg)
    if cfg.data.classes_file is not None and not cfg.data.classes_file.is_file():
        raise DataError(f"data.classes_file {cfg.data.classes_file} not found: run `pfp ingest` first, or remove "
                        "the key and state data.classes")
    items = read_csv(csv_file)
    items = check_items(items, data_root, len(cfg.data.classes), str(csv_file))
    ratios = (cfg.split.ratios.train, cfg.split.ratios.valid, cfg.split.ratios.test)
    keys = [f"group:{it.group}" if it.group else it.image for it in items]
    splits, n_moved_dupes = assign_all(keys, [it.image_hash for it in items], cfg.split.seed, ratios)
    if cfg.split.use_source_split:
        splits = _source_splits(items, splits, csv_file)

    names = cfg.data.classes
    counts = Counter(splits)
    class_counts: dict[str, dict[str, int]] = {s: dict.fromkeys(names, 0) for s in SPLITS}
    for it, s in zip(items, splits, strict=True):
        for c in it.classes:
            class_counts[s][names[c]] += 1
    for s in SPLITS:
        if counts[s] == 0:
            raise DataError(f"split {s!r} is empty with {len(items)} items; add data or change split.ratios")
    if not cfg.split.allow_missing_classes:
        for s in SPLITS:
            missing = [c for c, n in class_counts[s].items() if n == 0]
            if missing:
                raise DataError(
                    f"class {missing[0]!r} is present in no {s} item; add data or set split.allow_missing_classes"
                )

    split_cfg = cfg.section("split") | {"classes": list(names)}
    if not split_cfg["use_source_split"]:  # absent unless used: existing splits keep their fingerprints
        del split_cfg["use_source_split"]
    fp = split_fingerprint(((it.image, it.content_hash, s) for it, s in zip(items, splits, strict=True)), split_cfg)
    out_dir = cfg.paths.dataset_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(out_dir)
    moved = None
    if previous is not None:
        old = previous.items
        moved = sum(1 for it, s in zip(items, splits, strict=True) if it.image in old and old[it.image][1] != s)

    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    prefix = str(data_root) + os.sep  # string joins: pathlib costs seconds at 100,000 items
    for it, sp in zip(items, splits, strict=True):
        lists[sp].append(prefix + (it.image if os.sep == "/" else it.image.replace("/", os.sep)))
    list_files = {s: str((out_dir / f"{s}.txt").resolve()) for s in SPLITS}
    data_yaml = out_dir / "data.yaml"
    manifest = SplitManifest(
        fingerprint=fp,
        counts={s: counts[s] for s in SPLITS},
        class_counts=class_counts,
        data_yaml=str(data_yaml.resolve()),
        list_files=list_files,
        seed=cfg.split.seed,
        n_duplicates_grouped=n_moved_dupes,
        moved=moved,
        data_root=str(data_root),
        source=_ingest_source(data_root),
    )
    for s in SPLITS:
        atomic_write_text(out_dir / f"{s}.txt", "\n".join(lists[s]) + "\n")
    atomic_write_text(
        data_yaml,
        yaml.safe_dump(
            {"path": str(out_dir.resolve()), "train": "train.txt", "val": "valid.txt", "test": "test.txt",
             "names": dict(enumerate(names))},
            sort_keys=False,
        ),
    )
    head = manifest.to_dict()
    atomic_write_text(out_dir / MANIFEST, _manifest_json(head, ((it.image, it.content_hash, s)
                                                            for it, s in zip(items, splits, strict=True))))
    return manifest


def _source_splits(items: list, splits: list[str], csv_file: Path) -> list[str]:
    """`split.use_source_split`: the export's own split wins (ingest has checked its groups for leaks); items
    without one keep the hash policy's split."""
    if not any(it.source_split for it in items):
        raise DataError(f"{csv_file}: split.use_source_split is set but no row has a source_split "
                        "(written by `pfp ingest`)")
    aliases = {"val": "valid", "validation": "valid"}
    out = []
    for it, s in zip(items, splits, strict=True):
        src = aliases.get(it.source_split or "", it.source_split)
        if src and src not in SPLITS:
            raise DataError(f"{csv_file}:{it.line}: source_split {it.source_split!r} is not one of "
                            f"{', '.join(SPLITS)}")
        out.append(src or s)
    return out


def _ingest_source(data_root: Path) -> dict | None:
    """The description `pfp ingest` left beside the CSV (format, root, counts, digests): lineage of the split."""
    path = data_root / INGEST_REPORT
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        report = json.loads(raw)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path}: unreadable ingest report; run `pfp ingest` again or remove it") from None
    src = report.get("source") if isinstance(report, dict) else None
    if not isinstance(src, dict):
        return None
    return src | {"report_digest": hashlib.sha256(raw).hexdigest()}


def _manifest_json(head: dict, items: Iterable[tuple[str, str, str]]) -> str:
    """The manifest with one line per item under "items": {path: [content hash, split]}.

    json.dumps with an indent falls back to the pure-Python encoder (~1 s per 100,000 items); the items are
    formatted here with the C string encoder instead. Same JSON value as json.dumps(head | {"items": ...}).
    """
    from json.encoder import encode_basestring_ascii as q  # the C implementation

    body = ",\n".join(f"  {q(path)}: [{q(content)}, {q(split)}]" for path, content, split in items)
    text = json.dumps(head, indent=1)
    return f"{text[:-2]},\n \"items\": {{\n{body}\n }}\n}}" if body else json.dumps(head | {"items": {}}, indent=1)


def read_manifest(dataset_dir: Path) -> SplitManifest | None:
    """The manifest `pfp split` wrote in `dataset_dir`, or None when there is none; a damaged one is a DataError."""
    path = dataset_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return SplitManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        raise DataError(f"{path}: unreadable split manifest; run `pfp split` again") from None
    except ValueError as e:
        raise DataError(f"{path}: malformed split manifest ({e}); run `pfp split` again") from None


def current_split(cfg: PipelineConfig) -> SplitManifest:
    """The manifest of the current split, or a clear error telling the user to run `pfp split`."""
    m = read_manifest(cfg.paths.dataset_dir)
    if m is None:
        raise DataError(f"no split found in {cfg.paths.dataset_dir}/; run `pfp split` first")
    return m
