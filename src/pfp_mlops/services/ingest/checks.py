"""The checks between reading and writing: image bytes (hash, size, truncation), groups and leaks, duplicates.

Every image is read once: its sha256, its size from the header, and whether it ends where its format says it
ends. A JPEG that does not end with the EOI marker is an error, not a warning: Ultralytics "repairs" such files by
re-saving them in place during training (`verify_image_label`), which through a hard link or a symlink would
rewrite the source export and, in data/, silently change files DVC tracks.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from pfp_mlops.services.ingest import parallel
from pfp_mlops.services.ingest.model import Problems, SourceImage

PNG = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
JPEG = b"\xff\xd8\xff"
OTHER_MAGIC = (b"BM", b"RIFF", b"II*\x00", b"MM\x00*")
# Roboflow names every exported image `<original stem>_<ext>.rf.<hash>.<ext>`; augmented copies share the stem.
ROBOFLOW = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp|webp|tiff?|gif|heic|avif)\.rf\.[0-9a-zA-Z]+$", re.I)


def image_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, problem): problem is '' for a readable, complete image."""
    if data.startswith(PNG):
        if len(data) < 24:
            return 0, 0, "truncated PNG header"
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return w, h, "" if data.endswith(PNG_END) else "truncated PNG (no IEND chunk at the end)"
    if data.startswith(JPEG):
        w, h = _jpeg_size(data)
        if not w:
            return 0, 0, "corrupt JPEG (no frame header)"
        return w, h, "" if data.endswith(b"\xff\xd9") else ("truncated JPEG (does not end with the EOI marker; "
                                                             "Ultralytics would re-save it in place)")
    if data.startswith(OTHER_MAGIC):
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                im.verify()
            return w, h, ""
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            return 0, 0, f"unreadable image ({type(e).__name__})"
    return 0, 0, "not an image (PNG, JPEG, BMP, WebP or TIFF)"


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return 0, 0
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return 0, 0


def read_and_size(paths: Sequence[str]) -> list[tuple[str, int, int, str]]:
    """(sha256, width, height, problem) of each file, read once; problem '' for a complete image. Pure per file,
    so `parallel.map_ranges` can run it over ranges of a large list."""
    sha256 = hashlib.sha256
    out: list[tuple[str, int, int, str]] = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                chunks = [os.read(fd, 1 << 20)]
                while len(chunks[-1]) == 1 << 20:  # a short read of a regular file is its end: one read() for most
                    chunks.append(os.read(fd, 1 << 20))
            finally:
                os.close(fd)
        except OSError as e:
            out.append(("", 0, 0, f"cannot read ({e.strerror})"))
            continue
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        w, h, bad = image_size(data)
        out.append((sha256(data).hexdigest(), w, h, bad))
    return out


def inspect_images(images: list[SourceImage], problems: Problems, *, min_side: int, workers: int = 0) -> None:
    """Hash and size every image in place; unreadable/truncated → errors, size mismatches, tiny images → reported.
    The reading and hashing run in `workers` processes for a large list (0: auto, see `parallel.workers_for`)."""
    n = parallel.workers_for(len(images), workers)
    results = parallel.map_ranges(read_and_size, [img.path for img in images], n)
    for img, (sha, w, h, bad) in zip(images, results, strict=True):
        if not sha:
            problems.error("image_unreadable", f"{img.rel}: {bad}")
            continue
        img.sha256 = sha
        if bad:
            problems.error("image_unreadable", f"{img.rel}: {bad}")
            continue
        img.width, img.height = w, h
        if img.declared_size and img.declared_size != (w, h):
            if img.declared_size == (h, w):
                problems.warn("size_rotated", f"{img.rel}: {img.label_ref} states {img.declared_size[0]}x"
                                              f"{img.declared_size[1]}, the file is {w}x{h} (EXIF rotation?)")
            else:
                problems.error("size_mismatch", f"{img.rel}: {img.label_ref} states {img.declared_size[0]}x"
                                                f"{img.declared_size[1]}, the file is {w}x{h}: the boxes would "
                                                "be normalised wrongly")
        if min(w, h) < min_side:
            problems.warn("small_image", f"{img.rel}: {w}x{h} is smaller than train.imgsz / 8 ({min_side} px)")


def assign_groups(images: list[SourceImage], regex: re.Pattern[str] | None) -> list[str | None]:
    """The group of each image: the --group-regex match (its first group, else the whole match), else the Roboflow
    stem before `_jpg.rf.`; images with identical bytes share a group whatever their names. None: a group of one."""
    n = len(images)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    keys: list[str | None] = []
    first: dict[str, int] = {}
    for i, img in enumerate(images):
        key = None
        if regex is not None:
            m = regex.search(img.rel)
            if m:
                key = "re:" + (m.group(1) if m.groups() else m.group(0))
        if key is None:
            stem = img.dest.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            m = ROBOFLOW.match(stem)
            if m:
                key = "rf:" + m["stem"]
        keys.append(key)
        for k in (key, "sha:" + img.sha256 if img.sha256 else None):
            if k is None:
                continue
            j = first.setdefault(k, i)
            if j != i:
                parent[find(i)] = find(j)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[find(i)].append(i)
    out: list[str | None] = [None] * n
    for idx in members.values():
        named = sorted(k for i in idx if (k := keys[i]) is not None)
        if named:
            name = named[0].split(":", 1)[1]
        elif len(idx) > 1:
            name = "sha256:" + min(images[i].sha256 for i in idx)[:16]
        else:
            continue
        for i in idx:
            out[i] = name
    return out


def leaks_and_duplicates(images: list[SourceImage], groups: list[str | None]) -> dict[str, Any]:
    """Groups that straddle the export's splits (leaks if the splits are kept) and byte-identical images."""
    by_group: dict[str, list[SourceImage]] = defaultdict(list)
    for img, g in zip(images, groups, strict=True):
        if g is not None:
            by_group[g].append(img)
    leaks = []
    for g, imgs in sorted(by_group.items()):
        splits = Counter(i.split for i in imgs if i.split)
        if len(splits) > 1:
            leaks.append({"group": g, "splits": dict(sorted(splits.items())),
                          "images": [i.rel for i in imgs[:5]]})
    by_sha: dict[str, list[SourceImage]] = defaultdict(list)
    for img in images:
        if img.sha256:
            by_sha[img.sha256].append(img)
    within = across = 0
    examples = []
    for imgs in by_sha.values():
        if len(imgs) < 2:
            continue
        splits = {i.split for i in imgs}
        if len(splits) > 1:
            across += len(imgs)
        else:
            within += len(imgs)
        if len(examples) < 10:
            examples.append([i.rel for i in imgs[:4]])
    multi = [imgs for imgs in by_group.values() if len(imgs) > 1]
    return {"leaks": leaks, "n_groups": len(by_group), "multi_image_groups": len(multi),
            "images_in_multi_image_groups": sum(len(m) for m in multi),
            "duplicates": {"within_split": within, "across_splits": across, "examples": examples}}
