"""COCO JSON (one file, Roboflow's `<split>/_annotations.coco.json`, CVAT's `annotations/instances_<subset>.json`).

Classes are mapped explicitly, never by arithmetic: the categories that at least one annotation uses, in category-id
order, become class 0..K-1 (`category_map` in classes.yaml and the report). Unused categories are dropped and
listed: Roboflow's exports begin with an unannotated root category (id 0, named after the project). There is no
91→80 remapping (Ultralytics' `convert_coco(cls91to80=True)` default silently renumbers custom ids).
`iscrowd` annotations are skipped unless `keep_crowd`; zero-area boxes are dropped and reported; boxes sticking out
of the image are clipped and reported. An image is looked up beside its JSON, then under the root, `images/`,
`images/<subset>/` and `<subset>/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.services.ingest.model import (
    Problems,
    Root,
    SourceDataset,
    SourceImage,
    box_from_corners,
    dest_for,
    split_name,
)


def coco_files(source: Path) -> list[tuple[Path, str | None]]:
    """The annotation files of a COCO export and the split each one is (None: no split)."""
    if source.is_file():
        return [(source, None)]
    found = sorted(source.glob("*/_annotations.coco.json"))  # Roboflow
    if found:
        return [(p, split_name(p.parent.name)) for p in found]
    found = sorted((source / "annotations").glob("*.json")) if (source / "annotations").is_dir() else []
    if not found:
        found = sorted(source.glob("*.json"))
    return [(p, split_name(p.stem.removeprefix("instances_").removeprefix("_annotations."))) for p in found]


def _loads(raw: bytes) -> Any:
    """orjson when installed (it is, through dvc-data; ~1.5× faster on a 30 MB file), else the standard library.
    Both raise json.JSONDecodeError (orjson's is a subclass) with the line and column."""
    try:
        import orjson
    except ImportError:
        return json.loads(raw)
    return orjson.loads(raw)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        data = _loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: not a COCO JSON file ({e.msg})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a COCO JSON file (not UTF-8 text)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise DataError(f"{path}: not a COCO detection file (needs the lists images, annotations, categories)")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(f"{path}: annotations must be a list")
    return data


def read_coco(source: Path, root: Root, *, keep_crowd: bool, fmt: str = "coco") -> SourceDataset:
    files = coco_files(source)
    if not files:
        raise DataError(f"{source}: no COCO JSON found (_annotations.coco.json, annotations/*.json or *.json)")
    problems = Problems()
    loaded = []
    categories: dict[int, str] | None = None
    cat_file = None
    for path, split in files:
        root.resolve(str(path), str(path))
        data = _load(path)
        cats = {}
        for c in data["categories"]:
            try:
                cats[int(c["id"])] = str(c["name"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}: a category without an integer id and a name: {str(c)[:80]}") from None
        if categories is None:
            categories, cat_file = cats, path
        elif cats != categories:
            raise DataError(f"{path}: categories differ from {cat_file} ({cats} vs {categories})")
        loaded.append((path, split, data))
    assert categories is not None
    used = sorted({a.get("category_id") for _, _, d in loaded for a in d.get("annotations", [])
                   if isinstance(a, dict) and a.get("category_id") in categories})
    cat_map = {cid: i for i, cid in enumerate(used)}
    names = [categories[cid] for cid in used]
    if not names:
        raise DataError(f"{source}: no annotation uses any category: nothing to learn")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{source}: two annotated categories are both named {dupes[0]!r}")
    dropped = [{"id": cid, "name": n} for cid, n in sorted(categories.items()) if cid not in cat_map]
    for d in dropped:
        problems.warn("category_dropped", f"category {d['id']} {d['name']!r} has no annotation: dropped")
    images: list[SourceImage] = []
    roots: dict[str, list[str]] = {}
    for path, split, data in loaded:
        roots.setdefault(split or "all", []).append(os.path.realpath(path))
        images += _images(path, split, data, source if source.is_dir() else path.parent, root, cat_map,
                          keep_crowd, problems)
    if not images:
        raise DataError(f"{source}: the COCO files list no images")
    how = ("Roboflow COCO (<split>/_annotations.coco.json)" if any(p.name == "_annotations.coco.json"
                                                                     for p, _ in files) else "COCO JSON")
    meta = {"category_map": {str(k): v for k, v in cat_map.items()}, "dropped_categories": dropped}
    return SourceDataset(fmt, root.path, roots, names, images, problems, how, meta)


def _annotation_error(a: object, n: int, rel_json: str, by_id: dict, missing: set, cat_map: dict[int, int],
                      problems: Problems) -> None:
    """The exact problem of an annotation the fast path could not read."""
    where = f"{rel_json}: annotations[{n}]"
    if not isinstance(a, dict):
        problems.error("annotation", f"{where}: not an object")
    elif a.get("image_id") not in by_id:
        if a.get("image_id") not in missing:
            problems.error("annotation", f"{where}: image_id {a.get('image_id')!r} is not in images")
    elif a.get("category_id") not in cat_map:
        problems.error("unknown_class", f"{where}: category_id {a.get('category_id')!r} is not in categories")
    else:
        problems.error("annotation", f"{where}: bbox must be [x, y, width, height]")


def _images(path: Path, split: str | None, data: dict, base: Path, root: Root, cat_map: dict[int, int],
            keep_crowd: bool, problems: Problems) -> list[SourceImage]:
    rel_json = root.rel(str(path))
    by_id: dict[Any, SourceImage] = {}
    subset = path.parent.name if path.name == "_annotations.coco.json" else path.stem.removeprefix("instances_")
    candidates = [str(path.parent), str(base), str(base / "images"), str(base / "images" / subset),
                  str(base / subset)]
    out = []
    missing: set[Any] = set()
    for n, im in enumerate(data["images"]):
        try:
            iid, name, w, h = im["id"], str(im["file_name"]), int(im["width"]), int(im["height"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{rel_json}: images[{n}] needs id, file_name, width and height") from None
        if w <= 0 or h <= 0:
            raise DataError(f"{rel_json}: images[{n}] ({name}) has size {w}x{h}")
        hit = root.find_file(candidates, name, f"{rel_json}: {name}")
        if hit is None:
            problems.error("image_missing", f"{rel_json}: image {name!r} (id {iid}) not found")
            missing.add(iid)
            continue
        found, real = hit
        img = SourceImage(path=real, rel=root.rel(found), split=split, dest=dest_for(split, found, found.rpartition(
            os.sep)[0]), boxes=[], label_ref=rel_json, declared_size=(w, h))
        if iid in by_id:
            raise DataError(f"{rel_json}: image id {iid} appears twice")
        by_id[iid] = img
        out.append(img)
    crowd = 0
    for n, a in enumerate(data.get("annotations", [])):
        try:  # the common case first, without building messages (200,000 annotations in a large export)
            img = by_id[a["image_id"]]
            cls = cat_map[a["category_id"]]
            x, y, bw, bh = a["bbox"]
            x, y, bw, bh = float(x), float(y), float(bw), float(bh)
        except (KeyError, TypeError, ValueError):
            _annotation_error(a, n, rel_json, by_id, missing, cat_map, problems)
            continue
        if a.get("iscrowd") and not keep_crowd:
            crowd += 1
            continue
        w, h = img.declared_size  # type: ignore[misc]
        if bw <= 0 or bh <= 0:
            problems.warn("zero_area", f"{rel_json}: annotations[{n}] ({img.rel}): zero-area box dropped")
            continue
        x0, y0, x1, y1 = x / w, y / h, (x + bw) / w, (y + bh) / h
        if 0.0 <= x0 and 0.0 <= y0 and x1 <= 1.0 and y1 <= 1.0:
            img.boxes.append((cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))  # type: ignore[union-attr]
            continue
        box = box_from_corners(cls, x0, y0, x1, y1, f"{rel_json}: annotations[{n}] ({img.rel})", problems)
        if box is not None:
            img.boxes.append(box)  # type: ignore[union-attr]
    if crowd:
        problems.warn("iscrowd_skipped", f"{rel_json}: {crowd} iscrowd annotations skipped (--keep-crowd keeps "
                                         "them)")
    return out
