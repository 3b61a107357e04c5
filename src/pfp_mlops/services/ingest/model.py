"""What the readers hand over: one `SourceDataset` (images, boxes, classes, where each came from) and the problems.

Every reader turns its format into the same shape, so the checks, the grouping and the writer exist once. Boxes
are YOLO-normalised (class, cx, cy, w, h) by the time they get here; the reader did the format's conversion and
reported what it dropped.
"""

from __future__ import annotations

import math
import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.domain.errors import DataError

SPLIT_NAMES = {"train": "train", "val": "valid", "valid": "valid", "validation": "valid", "test": "test"}
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")  # what `pfp split` accepts
SHOWN = 20  # examples kept per problem kind; the count is always complete


def split_name(name: str | None) -> str | None:
    """`val`/`Validation`/`Train` → pfp's split names; anything else (`default`, a custom subset) → None."""
    return SPLIT_NAMES.get((name or "").strip().lower())


@dataclass(slots=True)
class SourceImage:
    path: str                  # the source file, absolute (symlinks resolved)
    rel: str                   # relative to the source root (messages, the report)
    split: str | None          # the export's split: train / valid / test, or None
    dest: str                  # where it goes under the output's images/ (posix, unique)
    boxes: list[tuple[int, float, float, float, float]] | None  # None: no label file / no annotation entry
    label_ref: str = ""        # where the boxes came from (label file, JSON, XML), for messages
    sha256: str = ""
    width: int = 0
    height: int = 0
    declared_size: tuple[int, int] | None = None  # the size the annotation file states (COCO, CVAT)
    label_text: str = ""       # the label file pfp writes (set once, used for the digest and the file)


@dataclass
class Problems:
    """Hard errors (exit 2) and warnings, by kind; a capped list of examples, an exact count."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str, message: str) -> None:
        self._add(self.errors, kind, message)

    def warn(self, kind: str, message: str) -> None:
        self._add(self.warnings, kind, message)

    def _add(self, into: dict[str, list[str]], kind: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = into.setdefault(kind, [])
        if len(shown) < SHOWN:
            shown.append(message)

    def n_errors(self) -> int:
        return sum(self.counts[k] for k in self.errors)

    def to_dict(self, which: dict[str, list[str]]) -> dict[str, Any]:
        return {k: {"count": self.counts[k], "examples": v} for k, v in sorted(which.items())}


@dataclass
class SourceDataset:
    format: str                       # roboflow / yolo / coco / cvat / folders
    root: str                         # the source root, absolute
    roots: dict[str, list[str]]       # split (or "all") → the resolved folders / list files / annotation files
    classes: list[str]
    images: list[SourceImage]
    problems: Problems
    detected_by: str = ""             # what made the detection decide (printed)
    meta: dict[str, Any] = field(default_factory=dict)  # format specifics: roboflow block, category map, …


class Root:
    """The source root and the rule that nothing outside it is read (symlinks and `../` included)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)
        self._prefix = self.path.rstrip(os.sep) + os.sep
        self._dirs: dict[str, str] = {}
        self._listings: dict[str, dict[str, bool]] = {}
        self._last_hit = 0

    def rel(self, path: str) -> str:
        if path.startswith(self._prefix):  # the common case, without relpath's normalisation (100,000 calls)
            rel = path[len(self._prefix):]
            return rel if os.sep == "/" else rel.replace(os.sep, "/")
        return os.path.relpath(path, self.path).replace(os.sep, "/")

    def inside(self, real: str) -> bool:
        return real == self.path or real.startswith(self._prefix)

    def resolve(self, path: str, what: str) -> str:
        """The real path of `path`, which must exist inside the root: DataError for a loop or an escape."""
        try:
            real = os.path.realpath(path, strict=True)
        except OSError as e:
            if e.errno == 40:  # ELOOP
                raise DataError(f"{what}: symlink loop at {path}") from None
            raise DataError(f"{what}: not found: {path}") from None
        if not self.inside(real):
            raise DataError(f"{what}: {path} escapes the source root {self.path} (resolves to {real})")
        return real

    def find_file(self, candidates: list[str], name: str, what: str) -> tuple[str, str] | None:
        """The first `<candidate>/<name>` that exists: (as found, real path inside the root), or None.

        Each folder is listed once (os.scandir, cached) and names are looked up in the listing: one system call per
        folder instead of one lstat per image. A name the listings do not hold gets the lstat (a case-insensitive
        file system, where the listing spells the name otherwise). A symlinked file is resolved (and checked) on its
        own; a folder's real path is cached.
        """
        last = self._last_hit if self._last_hit < len(candidates) else 0
        sep = "" if name.startswith(os.sep) else os.sep  # os.path.join semantics, without its cost
        order = (last, *(j for j in range(len(candidates)) if j != last))
        for i in order:
            found = name if not sep else candidates[i] + sep + name
            d, _, base = found.rpartition(os.sep)
            listing = self._listings.get(d)
            if listing is None:
                listing = self._listings[d] = _listing(d)
            link = listing.get(base)
            if link is None:
                continue
            self._last_hit = i  # an export keeps its images in one place: try that first next time
            return self._hit(found, d, base, link, what)
        for i in order:
            found = name if not sep else candidates[i] + sep + name
            try:
                st = os.lstat(found)
            except OSError:
                continue
            d, _, base = found.rpartition(os.sep)
            return self._hit(found, d, base, stat.S_ISLNK(st.st_mode), what)
        return None

    def _hit(self, found: str, d: str, base: str, link: bool, what: str) -> tuple[str, str]:
        if link:
            return found, self.resolve(found, what)
        return found, self.real_dir(d, what) + os.sep + base

    def real_dir(self, path: str, what: str) -> str:
        """Cached `resolve` for folders: a 100,000-image export has a handful of them."""
        got = self._dirs.get(path)
        if got is None:
            got = self._dirs[path] = self.resolve(path, what)
        return got


def _listing(folder: str) -> dict[str, bool]:
    """name → is a symlink, for the entries of `folder` that are not folders; {} when it cannot be listed."""
    try:
        with os.scandir(folder or os.sep) as it:
            return {e.name: e.is_symlink() for e in it if e.is_symlink() or not e.is_dir()}
    except OSError:
        return {}


def walk_images(root: Root, top: str, what: str) -> tuple[list[str], list[str]]:
    """Image files under `top` (sorted) and the other files seen. Symlinks are followed when they resolve inside
    the root; a loop or an escape is a DataError."""
    images: list[str] = []
    others: list[str] = []
    seen: set[str] = set()
    stack = [root.real_dir(top, what)]
    while stack:
        d = stack.pop()
        if d in seen:
            raise DataError(f"{what}: symlink loop: {d} is reached twice")
        seen.add(d)
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            raise DataError(f"{what}: cannot list {d} ({e.strerror})") from None
        for e in entries:
            p = e.path
            if e.is_symlink():
                real = root.resolve(p, what)
                if os.path.isdir(real):
                    stack.append(real)
                    continue
            elif e.is_dir():
                stack.append(p)
                continue
            (images if p.lower().endswith(IMAGE_SUFFIXES) else others).append(p)
    images.sort()
    return images, others


def box_from_corners(cls: int, x0: float, y0: float, x1: float, y1: float, where: str,
                     problems: Problems) -> tuple[int, float, float, float, float] | None:
    """A normalised corner box → YOLO (cls, cx, cy, w, h), clipped to the image (warning), None when empty (warning).

    Annotation tools let boxes stick out of the image (CVAT says so; Ultralytics drops such labels as corrupt):
    the part inside is kept and reported, an empty remainder is dropped and reported.
    """
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        problems.error("annotation", f"{where}: box coordinates must be finite numbers")
        return None
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, 1.0), min(y1, 1.0)
    if cx1 - cx0 <= 0 or cy1 - cy0 <= 0:
        if x1 > x0 and y1 > y0:
            problems.warn("box_outside", f"{where}: box entirely outside the image dropped")
        else:
            problems.warn("zero_area", f"{where}: zero-area box dropped")
        return None
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        problems.warn("box_outside", f"{where}: box outside [0, 1] clipped to the image")
    return (cls, (cx0 + cx1) / 2, (cy0 + cy1) / 2, cx1 - cx0, cy1 - cy0)


def dest_for(split: str | None, path: str, base: str) -> str:
    """The image's place under the output's `images/`: `<split or all>/<path after its last images/ folder>`.

    `train/images/x.jpg` (Roboflow) and `images/train/x.jpg` (Ultralytics, CVAT) both become `train/x.jpg`; a folder
    named like the split right after `images/` is not repeated. Any `images/` left inside the name is renamed, so
    Ultralytics' images/ → labels/ rule (the last `/images/`) finds the label pfp writes.
    """
    posix = path.replace(os.sep, "/")
    sub = posix.rsplit("/images/", 1)[1] if "/images/" in posix else os.path.relpath(path, base).replace(os.sep, "/")
    head, _, tail = sub.partition("/")
    if tail and split is not None and split_name(head) == split:
        sub = tail
    sub = posixpath.normpath(sub).replace("images/", "images_/")
    if sub.startswith(("../", "/")) or sub in ("..", "."):  # never outside the output's images/<split>/
        sub = sub.rsplit("/", 1)[-1] if sub not in ("..", ".") else "image"
    return f"{split or 'all'}/{sub}"
