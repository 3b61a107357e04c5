"""Readers for YOLO text labels: an Ultralytics/Roboflow/CVAT dataset YAML, or bare `images/` + `labels/` folders.

Path rules follow Ultralytics' `check_det_dataset` (ultralytics/data/utils.py), made strict:
- the root is the YAML's `path` (relative to the YAML's folder), else the YAML's folder;
- a split entry is a folder (images found recursively), a `.txt` list of images, or a list of those;
- an entry that does not exist and starts with `../` is retried without it: Roboflow writes `../train/images`
  beside `train/`, which Ultralytics resolves this way (roboflow-python #240, ultralytics #1027);
- list lines starting with `./` or relative are read relative to the list's folder (CVAT writes
  `images/train/x.jpg` in `train.txt` next to `images/`); nothing may resolve outside the source root.
- labels: Ultralytics' `img2label_paths` (the last `/images/` becomes `/labels/`, the extension `.txt`); a label
  file whose image is not in the dataset is an error (the image is missing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pfp_mlops.domain.classes import normalise_names
from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.labels import parse_label_text
from pfp_mlops.services.ingest.model import (
    IMAGE_SUFFIXES,
    Problems,
    Root,
    SourceDataset,
    SourceImage,
    box_from_corners,
    dest_for,
    split_name,
    walk_images,
)


def label_path(image: str) -> str:
    """Ultralytics' img2label_paths for one path."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def read_label(path: str, ref: str, n_classes: int, problems: Problems) -> list | None:
    """Boxes of one label file (None when there is none); syntax and class errors, clipped/dropped boxes reported."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        problems.error("label_unreadable", f"{ref}: cannot read ({e.strerror})")
        return []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.error("label_syntax", f"{ref}: not valid UTF-8")
        return []
    boxes, found = parse_label_text(text, n_classes=n_classes, polygons=True)
    bad_lines = set()
    for p in found:
        if p.kind == "class":
            problems.error("label_class", f"{ref}:{p.line}: {p.message}")
            bad_lines.add(p.line)
        elif p.kind in ("fields", "number"):
            problems.error("label_syntax", f"{ref}:{p.line}: {p.message}")
            bad_lines.add(p.line)
    out = []
    for b in boxes:
        if b.line in bad_lines:
            continue
        box = box_from_corners(b.cls, b.cx - b.w / 2, b.cy - b.h / 2, b.cx + b.w / 2, b.cy + b.h / 2,
                               f"{ref}:{b.line}", problems)
        if box is not None:
            out.append(box)
    return out


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a dataset YAML must be a mapping (train:, val:, names:)")
    return data


def read_yaml_dataset(yaml_path: Path, source_root: Root, fmt: str) -> SourceDataset:
    data = _load_yaml(yaml_path)
    if data.get("names") is None:
        raise DataError(f"{yaml_path}: no `names:` (the class list); pfp does not invent class names from `nc`")
    try:
        classes = normalise_names(data["names"], nc=data.get("nc"), where="names")
    except ValueError as e:
        raise DataError(f"{yaml_path}: {e}") from None
    problems = Problems()
    base = yaml_path.parent
    if data.get("path"):
        p = Path(str(data["path"]))
        p = p if p.is_absolute() else base / p
        if p.is_dir():
            base = p
        else:  # an export moved since it was written (Roboflow's SDK and users write absolute or ../ roots)
            problems.warn("path_ignored", f"{yaml_path.name}: path: {data['path']} not found; the split entries "
                                          "are read relative to the YAML's folder")
    base_s = str(base)
    source_root.resolve(base_s, f"{yaml_path}: path")
    images: list[SourceImage] = []
    roots: dict[str, list[str]] = {}
    label_dirs: set[str] = set()
    for key in ("train", "val", "validation", "test"):
        entry = data.get(key)
        if not entry or (key == "validation" and data.get("val")):  # Ultralytics reads `validation` only without `val`
            continue
        split = split_name(key)
        for e in entry if isinstance(entry, list) else [entry]:
            resolved = _resolve_entry(str(e), base_s, source_root, f"{yaml_path}: {key}")
            roots.setdefault(split or "all", []).append(resolved)
            for img in _entry_images(resolved, source_root, f"{yaml_path}: {key}"):
                images.append(_image(img, split, resolved, source_root, len(classes), problems))
                label_dirs.add(os.path.dirname(label_path(img)))
    if not images:
        raise DataError(f"{yaml_path}: no images found under train:/val:/test:")
    _orphan_labels(images, label_dirs, source_root, problems)
    meta = {"yaml": source_root.rel(str(yaml_path))}
    if isinstance(data.get("roboflow"), dict):
        meta["roboflow"] = {k: str(v) for k, v in data["roboflow"].items()}
    how = "a dataset YAML with a roboflow: block" if fmt == "roboflow" else "a dataset YAML (train/val/names)"
    return SourceDataset(fmt, source_root.path, roots, classes, images, problems, f"{how}: {yaml_path.name}", meta)


def _resolve_entry(entry: str, base: str, root: Root, what: str) -> str:
    p = entry if os.path.isabs(entry) else os.path.join(base, entry)
    if not os.path.exists(p) and entry.startswith("../"):
        p = os.path.join(base, entry[3:])  # Ultralytics' fallback, the one Roboflow exports rely on
    if not os.path.lexists(p):
        raise DataError(f"{what}: {entry} not found (looked for {os.path.normpath(p)})")
    return root.resolve(p, what)


def _entry_images(entry: str, root: Root, what: str) -> list[str]:
    if os.path.isdir(entry):
        return walk_images(root, entry, what)[0]
    if not entry.endswith(".txt"):
        raise DataError(f"{what}: {entry} is neither a folder nor a .txt list of images")
    out = []
    folder = os.path.dirname(entry)
    with open(entry, encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            p = line if os.path.isabs(line) else os.path.join(folder, line.removeprefix("./"))
            out.append(root.resolve(p, f"{root.rel(entry)}:{n}"))
    return sorted(set(out))


def _image(path: str, split: str | None, base: str, root: Root, n_classes: int, problems: Problems) -> SourceImage:
    lbl = label_path(path)
    rel = root.rel(path)
    boxes = read_label(lbl, root.rel(lbl), n_classes, problems)
    return SourceImage(path=path, rel=rel, split=split, dest=dest_for(split, path, base), boxes=boxes,
                       label_ref=root.rel(lbl))


def _orphan_labels(images: list[SourceImage], label_dirs: set[str], root: Root, problems: Problems) -> None:
    """A label file without its image: the image is missing from the export (or from the split lists)."""
    expected = {label_path(i.path) for i in images}
    for d in sorted(label_dirs):
        if not os.path.isdir(d):
            continue
        for dirpath, _, files in os.walk(d):
            for f in files:
                p = os.path.join(dirpath, f)
                if f.endswith(".txt") and p not in expected:
                    if _image_on_disk(p):  # a list (train.txt) leaves it out on purpose
                        problems.warn("image_not_listed", f"{root.rel(p)}: its image is in no split list: ignored")
                    else:
                        problems.error("label_without_image", f"{root.rel(p)}: label file for a missing image")


def _image_on_disk(label: str) -> bool:
    sa, sb = f"{os.sep}labels{os.sep}", f"{os.sep}images{os.sep}"
    stem = sb.join(label.rsplit(sa, 1)).rsplit(".", 1)[0]
    return any(os.path.exists(stem + ext) for ext in (*IMAGE_SUFFIXES, *(e.upper() for e in IMAGE_SUFFIXES)))


def read_folders(source: Path, root: Root, classes: list[str] | None) -> SourceDataset:
    """`images/` + `labels/` (optionally `images/<split>/…`); class names from `classes.txt`, `obj.names`,
    `classes.yaml`/`data.yaml` (`names:`), else the project's data.classes (the ids must fit)."""
    img_dir = source / "images"
    if not img_dir.is_dir():
        raise DataError(f"{source}: no images/ folder (the folders format is images/ + labels/)")
    names, how = _folder_classes(source)
    if names is None:
        if not classes:
            raise DataError(f"{source}: no class list (classes.txt, obj.names or a YAML with names:)")
        names, how = list(classes), "data.classes of the project config"
    problems = Problems()
    images = []
    files = walk_images(root, str(img_dir), f"{source}/images")[0]
    for p in files:
        first = os.path.relpath(p, str(img_dir)).replace(os.sep, "/").split("/", 1)
        split = split_name(first[0]) if len(first) == 2 else None
        images.append(_image(p, split, str(img_dir), root, len(names), problems))
    if not images:
        raise DataError(f"{img_dir}: no images (PNG, JPEG, BMP, WebP, TIFF)")
    _orphan_labels(images, {str(source / "labels")}, root, problems)
    splits = sorted({i.split or "all" for i in images})
    return SourceDataset("folders", root.path, {s: [str(img_dir)] for s in splits}, names, images, problems,
                         "an images/ folder with labels/ beside it", {"classes_from": how})


def _folder_classes(source: Path) -> tuple[list[str] | None, str]:
    for name in ("classes.txt", "obj.names"):
        p = source / name
        if p.is_file():
            names = [ln.strip() for ln in p.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
            try:
                return normalise_names(names, where=str(p)), name
            except ValueError as e:
                raise DataError(str(e)) from None
    for name in ("classes.yaml", "data.yaml"):
        p = source / name
        if p.is_file():
            data = _load_yaml(p)
            if data.get("names") is not None:
                try:
                    return normalise_names(data["names"], nc=data.get("nc"), where=f"{p}: names"), name
                except ValueError as e:
                    raise DataError(str(e)) from None
    return None, ""
