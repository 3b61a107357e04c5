"""Writing the data folder: everything into a temporary sibling folder, then one rename into place.

A failure at any point removes the temporary folder, so `data/` is either the old one or the complete new one.
Images are hard-linked to the source by default (no bytes copied; the source's inode is shared, and pfp never
writes into an image), falling back to symlinks, then to copies, as the file system allows; `--copy` copies.
Labels, the CSV, classes.yaml and the report are always new files.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.services.ingest import parallel
from pfp_mlops.services.ingest.model import SourceImage

CSV_NAME = "dataset_info.csv"
CLASSES_NAME = "classes.yaml"
REPORT_NAME = "ingest_report.json"
COLUMNS = ("image_path", "label_path", "group", "source_split", "sha256", "width", "height")


def check_target(out: Path, source: Path, *, force: bool) -> None:
    """Refuse before any work: an output inside the source (or the reverse), or a non-empty one without --force."""
    o, s = os.path.realpath(out), os.path.realpath(source if source.is_dir() else source.parent)
    if o == s or o.startswith(s + os.sep) or s.startswith(o + os.sep):
        raise DataError(f"--out {out}: the output and the source {source} must not contain each other")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError(f"--out {out}: already holds files; --force replaces it (the source is never touched)")


def label_rel(dest: str) -> str:
    return "labels/" + dest.rsplit(".", 1)[0] + ".txt"


def write_dataset(out: Path, images: list[SourceImage], groups: list[str | None], *, mode: str,
                  classes_doc: dict[str, Any], report: dict[str, Any], workers: int = 0) -> str:
    """Write and move into place; returns how images were placed: hardlink, symlink or copy (mixed: the last
    fallback any image needed)."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    tmp = tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.ingest-{os.getpid()}-")
    try:
        placed = _write_files(tmp, images, mode, workers)
        _write_csv(os.path.join(tmp, CSV_NAME), images, groups)
        import yaml

        Path(tmp, CLASSES_NAME).write_text(
            "# written by `pfp ingest`: this dataset's class list (index = class id). Point the config's\n"
            "# data.classes_file at this file to use it.\n" + yaml.safe_dump(classes_doc, sort_keys=False),
            encoding="utf-8")
        report["link_mode"] = placed
        Path(tmp, REPORT_NAME).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return placed


def _write_csv(path: str, images: list[SourceImage], groups: list[str | None]) -> None:
    """The CSV; csv.writer only for rows that need quoting (a comma or quote in a name): 100,000 rows."""
    special = re.compile(r'[,"\r\n]')
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    lines = [",".join(COLUMNS)]
    for img, g in zip(images, groups, strict=True):
        fields = ("images/" + img.dest, label_rel(img.dest), g or "", img.split or "", img.sha256, str(img.width),
                  str(img.height))
        if any(special.search(f) for f in fields[:3]):
            buf.seek(0)
            buf.truncate()
            w.writerow(fields)
            lines.append(buf.getvalue()[:-1])
        else:
            lines.append(",".join(fields))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines) + "\n")


FALLBACK = ("hardlink", "symlink", "copy")


def _write_files(tmp: str, images: list[SourceImage], mode: str, workers: int = 0) -> str:
    """The image links (or copies) and the label files; in `workers` processes for a large dataset. Returns the
    placement that was used, the last fallback any image needed (hardlink, then symlink, then copy)."""
    dirs = set()
    for img in images:
        d = img.dest.rsplit("/", 1)[0] if "/" in img.dest else ""
        dirs.add(d)
    for d in sorted(dirs):
        os.makedirs(os.path.join(tmp, "images", d), exist_ok=True)
        os.makedirs(os.path.join(tmp, "labels", d), exist_ok=True)
    start = "copy" if mode == "copy" else "hardlink"
    img_prefix, tmp_prefix = os.path.join(tmp, "images") + os.sep, tmp + os.sep
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    def place(batch: Sequence[SourceImage]) -> list[str]:
        how = start
        for img in batch:
            how = _place(img.path, img_prefix + img.dest, how, strict=mode == "link")
            fd = os.open(tmp_prefix + label_rel(img.dest), flags, 0o644)
            try:
                if img.label_text:
                    os.write(fd, img.label_text.encode())
            finally:
                os.close(fd)
        return [how]

    used = parallel.map_ranges(place, images, parallel.workers_for(len(images), workers))
    return max(used, key=FALLBACK.index) if used else start


def _place(src: str, dst: str, how: str, *, strict: bool) -> str:
    """Hard link, else symlink, else copy; the first method that works is kept for the rest."""
    if how == "hardlink":
        try:
            os.link(src, dst)
            return how
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP):
                raise
            how = "symlink"
    if how == "symlink":
        try:
            os.symlink(src, dst)
            return how
        except OSError:
            if strict:
                raise DataError(f"--link: neither a hard link nor a symlink can be made in {os.path.dirname(dst)}; "
                                "use --copy") from None
            how = "copy"
    shutil.copyfile(src, dst)
    return how


def _remove_stale(out: Path) -> None:
    """Temporary folders of an ingest that was killed (SIGKILL, power loss): named with its pid, removed once that
    process is gone. A live one (another ingest running now) is left alone."""
    for p in out.parent.glob(f".{out.name}.ingest-*-*"):
        try:
            pid = int(p.name.rsplit(".ingest-", 1)[1].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _move_into_place(tmp: str, out: Path) -> None:
    """Rename the finished folder to `out`; an existing `out` (--force) is renamed aside first, then removed."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-")
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
