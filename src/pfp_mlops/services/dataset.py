"""Reading and checking `dataset_info.csv`, its images and YOLO labels. Errors name the file and the line.

CSV columns (comma-separated, UTF-8, header required):
    image_path   required; relative to the CSV's folder (the data root), under a folder named `images/`
    label_path   optional; must be the Ultralytics convention (`images/` -> `labels/`, extension `.txt`)
    group        optional; items of one group always land in the same split (e.g. frames of one video)
    source_split optional; the split the source export put the image in (`pfp ingest`); used by `pfp split` only
                 with `split.use_source_split`
    sha256, width, height   optional, written by `pfp ingest` (the image's hash and size); informational
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.labels import parse_label_text

REQUIRED = ("image_path",)
OPTIONAL = ("label_path", "group", "source_split", "sha256", "width", "height")
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class Item:
    line: int
    image: str  # relative to the data root, posix
    label: str
    group: str | None
    image_hash: str = ""
    content_hash: str = ""  # image + label bytes
    classes: tuple[int, ...] = ()
    source_split: str | None = None


def label_path_for(image_rel: str) -> str:
    """Ultralytics' rule: the last `images/` becomes `labels/`, the extension `.txt`."""
    if "images/" not in image_rel:
        return ""
    head, tail = image_rel.rsplit("images/", 1)
    stem = tail.rsplit(".", 1)[0]
    return f"{head}labels/{stem}.txt"


def read_csv(csv_path: Path) -> list[Item]:
    """Parse the CSV into items; structural problems only (files are checked by `check_items`)."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: dataset CSV not found")
    raw = csv_path.read_bytes()
    if not raw.strip():
        raise DataError(f"{csv_path}: file is empty (expected a header: image_path,label_path,group)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{csv_path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as e:
        raise DataError(f"{csv_path}:1: cannot read the header ({e})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        first = ",".join(header)
        for delim in (";", "\t", "|"):
            if delim in first:
                raise DataError(
                    f"{csv_path}:1: wrong delimiter {delim!r}; the CSV must be comma-separated "
                    f"with columns image_path[,label_path][,group]"
                )
        raise DataError(f"{csv_path}:1: missing required column {missing[0]!r} (header: {first})")
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise DataError(f"{csv_path}:1: unknown column {unknown[0]!r} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    idx = {c: header.index(c) for c in header}
    items: list[Item] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{csv_path}:{line}: expected {len(header)} fields, found {len(row)}")
            image = _safe_rel(row[idx["image_path"]].strip(), csv_path, line, "image_path")
            expected_label = label_path_for(image)
            if not expected_label:
                raise DataError(f"{csv_path}:{line}: image_path {image!r} must lie under a folder named 'images/'")
            label = expected_label
            if "label_path" in idx and row[idx["label_path"]].strip():
                label = _safe_rel(row[idx["label_path"]].strip(), csv_path, line, "label_path")
                if label != expected_label:
                    raise DataError(
                        f"{csv_path}:{line}: label_path {label!r} does not follow the images/ -> labels/ "
                        f"convention (expected {expected_label!r})"
                    )
            group = row[idx["group"]].strip() or None if "group" in idx else None
            if image in seen:
                raise DataError(f"{csv_path}:{line}: duplicate image_path {image!r} (first on line {seen[image]})")
            seen[image] = line
            source_split = (row[idx["source_split"]].strip() or None) if "source_split" in idx else None
            items.append(Item(line=line, image=image, label=label, group=group, source_split=source_split))
    except csv.Error as e:
        raise DataError(f"{csv_path}:{reader.line_num}: malformed CSV ({e})") from None
    if not items:
        raise DataError(f"{csv_path}: has a header but no rows")
    return items


def _safe_rel(value: str, csv_path: Path, line: int, column: str) -> str:
    if not value:
        raise DataError(f"{csv_path}:{line}: {column} is empty")
    if _is_plain(value):  # the common case, fast for 100,000-row CSVs: normalising would return it unchanged
        return value
    p = value.replace("\\", "/")
    if p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        raise DataError(f"{csv_path}:{line}: {column} {value!r} is absolute; paths must be relative to the data root")
    norm = os.path.normpath(p).replace("\\", "/")
    if norm == ".." or norm.startswith("../"):
        raise DataError(f"{csv_path}:{line}: {column} {value!r} escapes the data root")
    return norm


def _is_plain(value: str) -> bool:
    """A relative posix path without drive, backslash, empty, `.` or `..` segment (so already normal)."""
    w = f"/{value}/"
    return "\\" not in value and value[1:2] != ":" and "//" not in w and "/./" not in w and "/../" not in w


def check_items(items: list[Item], root: Path, n_classes: int, csv_name: str) -> list[Item]:
    """Hash and check each image and label; return items with hashes and class ids.

    Paths are joined as strings and files read with os.open/os.read: pathlib joins and buffered file objects cost
    seconds at 100,000 items. Same files, same errors.
    """
    out = []
    prefix = str(root) + os.sep
    native = os.sep == "/"
    blake2b = hashlib.blake2b
    for it in items:
        img_path = prefix + (it.image if native else it.image.replace("/", os.sep))
        try:
            data = _read(img_path)
        except FileNotFoundError:
            raise DataError(f"{csv_name}:{it.line}: image file not found: {it.image}") from None
        except (IsADirectoryError, PermissionError) as e:
            raise DataError(f"{csv_name}:{it.line}: cannot read image {it.image} ({e.__class__.__name__})") from None
        if not data.startswith(IMAGE_MAGIC):
            raise DataError(f"{csv_name}:{it.line}: {it.image} is not an image (PNG, JPEG, BMP, WebP or TIFF)")
        lbl_path = prefix + (it.label if native else it.label.replace("/", os.sep))
        try:
            lbl = _read(lbl_path)
        except FileNotFoundError:
            raise DataError(f"{csv_name}:{it.line}: label file not found: {it.label}") from None
        classes = _check_label(lbl, it.label, n_classes)
        img_hash = blake2b(data, digest_size=16).hexdigest()
        content = blake2b(data + b"\0" + lbl, digest_size=16).hexdigest()
        out.append(Item(it.line, it.image, it.label, it.group, img_hash, content, classes, it.source_split))
    return out


def _read(path: str) -> bytes:
    """The whole file; raises what open() + read() would (FileNotFoundError, IsADirectoryError, PermissionError)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def _check_label(raw: bytes, name: str, n_classes: int) -> tuple[int, ...]:
    """The class ids of one label file; the first problem of any kind is an error naming the file and line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not valid UTF-8") from None
    boxes, problems = parse_label_text(text, n_classes=n_classes)
    if problems:
        p = problems[0]
        raise DataError(f"{name}:{p.line}: {p.message}")
    return tuple(b.cls for b in boxes)
