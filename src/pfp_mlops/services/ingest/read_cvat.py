"""CVAT for images 1.1 (`annotations.xml` + `images/`), task, job or project export.

Classes are the labels declared in `<meta>` (task, job or project), in their order. Only `<box>` shapes become
boxes (pixel `xtl ytl xbr ybr`); other shapes (polygon, polyline, points, mask, ellipse, cuboid, skeleton) are
counted and skipped with a warning, tags ignored. A project export gives each image a `subset` (Train, Validation,
Test, or custom) and puts it under `images/<subset>/`; a task export has `images/<name>`. CVAT's YOLO and COCO
exports are read by the YOLO and COCO readers.
"""

from __future__ import annotations

import os
from pathlib import Path

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

OTHER_SHAPES = ("polygon", "polyline", "points", "mask", "ellipse", "cuboid", "skeleton")


def read_cvat(xml_path: Path, root: Root) -> SourceDataset:
    import xml.etree.ElementTree as ET

    root.resolve(str(xml_path), str(xml_path))
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        line, col = e.position
        raise DataError(f"{xml_path}:{line}:{col}: not a CVAT XML file ({e})") from None
    doc = tree.getroot()
    if doc.tag != "annotations":
        raise DataError(f"{xml_path}: the root element is <{doc.tag}>, CVAT's is <annotations>")
    if doc.find("track") is not None:
        raise DataError(f"{xml_path}: CVAT for video (tracks) is not supported; export as CVAT for images 1.1")
    labels = [el.findtext("name", "").strip() for el in doc.iterfind("meta/*/labels/label")]
    labels = [n for n in labels if n]
    if not labels:
        raise DataError(f"{xml_path}: no labels declared in <meta> (task, job or project)")
    index = {n: i for i, n in enumerate(labels)}
    if len(index) != len(labels):
        raise DataError(f"{xml_path}: a label is declared twice in <meta>")
    problems = Problems()
    base = xml_path.parent
    images: list[SourceImage] = []
    skipped = 0
    rel_xml = root.rel(str(xml_path))
    for el in doc.iterfind("image"):
        name = el.get("name", "")
        subset = el.get("subset")
        split = split_name(subset)
        where = f"{rel_xml}:image {name!r}"
        try:
            w, h = int(el.get("width", "")), int(el.get("height", ""))
        except ValueError:
            raise DataError(f"{where}: width and height must be integers") from None
        cands = [str(base / "images"), str(base / "images" / (subset or "")), str(base)]
        hit = root.find_file(cands, name, where) if name else None
        if hit is None:
            problems.error("image_missing", f"{where}: image file not found under images/")
            continue
        found, real = hit
        boxes = []
        for shape in el:
            if shape.tag in OTHER_SHAPES:
                skipped += 1
                continue
            if shape.tag != "box":
                continue
            label = shape.get("label", "")
            if label not in index:
                problems.error("unknown_class", f"{where}: box label {label!r} is not declared in <meta>")
                continue
            try:
                x0, y0, x1, y1 = (float(shape.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))
            except ValueError:
                problems.error("annotation", f"{where}: a box needs numeric xtl, ytl, xbr, ybr")
                continue
            box = box_from_corners(index[label], x0 / w, y0 / h, x1 / w, y1 / h, where, problems)
            if box is not None:
                boxes.append(box)
        images.append(SourceImage(path=real, rel=root.rel(found), split=split,
                                  dest=dest_for(split, found, str(base)), boxes=boxes, label_ref=rel_xml,
                                  declared_size=(w, h)))
    if skipped:
        problems.warn("shape_skipped", f"{rel_xml}: {skipped} non-box shapes skipped (only <box> is read)")
    if not images and not problems.errors:
        raise DataError(f"{xml_path}: no <image> elements")
    splits = sorted({i.split or "all" for i in images}) or ["all"]
    return SourceDataset("cvat", root.path, {s: [os.path.realpath(xml_path)] for s in splits}, labels, images, problems,
                         "CVAT for images 1.1 (annotations.xml)", {"xml": rel_xml})
