"""Reading the prediction log and the delayed labels. Nothing here stops on bad input: it is counted and reported.

Log: every `predictions*.jsonl` file of the log directory (one per serve worker, rotated by size), one JSON object
per image (CONTRACTS §3). A last line without its newline is a write in progress (skipped, not an error); any other
line that is not schema-1 JSON is counted as corrupt with its file and line number. Records come back ordered by
(ts, request_id, image_index).

Labels, two ways (both may be used; the CSV wins for an image both name):
* `<labels dir>/<sha256>.txt` — a YOLO label file named by the sha256 of the image bytes the server logged;
* a CSV `<labels dir>/labels.csv` (or `monitor.labels_csv`) with a header and the columns `label_path` (relative to
  the CSV's folder) and either `sha256` or `request_id` (+ optional `image_index`, default 0).
A label file is `class cx cy w h` per line, normalised; an empty file means "no objects". Label rows are parsed by
the project's one label parser (`domain/labels.py`, CONTRACTS §4; `services/dataset.py`'s rule until it lands).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfp_mlops.domain.prediction_log import BadLine, LoggedPrediction, parse_record

_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_EXAMPLES = 5


@dataclass
class LogRead:
    predictions: list[LoggedPrediction]
    files: int = 0
    lines: int = 0
    corrupt: int = 0
    partial: int = 0
    other_models: int = 0
    before_since: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, `file:line: why`

    def report(self) -> dict[str, object]:
        return {"files": self.files, "lines": self.lines, "predictions": len(self.predictions),
                "corrupt": self.corrupt, "partial": self.partial, "other_models": self.other_models,
                "before_since": self.before_since, "duplicates": self.duplicates, "problems": self.problems}


def mirror_s3(ctx: Any, log_dir: Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    """With `monitor.log_s3_uri` and no explicit log folder: bring what is new under the prefix (log files, stored
    images, labels uploaded beside them) into `<PFP_HOME>/monitor/s3-mirror/` and read the log from there."""
    uri = ctx.cfg.monitor.log_s3_uri
    if log_dir is not None or not uri:
        return log_dir, None
    from pfp_mlops.adapters.s3_upload import mirror

    dest = ctx.home / "monitor" / "s3-mirror"
    secret = ctx.settings.aws_secret_access_key
    report = mirror(uri, dest, endpoint=ctx.settings.mlflow_s3_endpoint_url, key_id=ctx.settings.aws_access_key_id,
                    secret=secret.get_secret_value() if secret else None)
    return dest, report


def log_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("predictions*.jsonl") if p.is_file()) if log_dir.is_dir() else []


def read_log(log_dir: Path, *, model: str, since_ts: float | None = None) -> LogRead:
    out = LogRead(predictions=[])
    seen: set[tuple[str, int]] = set()
    for path in log_files(log_dir):
        out.files += 1
        try:
            raw = path.read_bytes()
        except OSError as e:
            out.problems.append(f"{path.name}: unreadable ({type(e).__name__})")
            continue
        lines = raw.split(b"\n")
        tail_partial = not raw.endswith(b"\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            out.lines += 1
            try:
                rec = parse_record(json.loads(line))
            except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and BadLine are ValueErrors
                if tail_partial and n == len(lines):
                    out.partial += 1
                    continue
                out.corrupt += 1
                if len(out.problems) < MAX_EXAMPLES:
                    why = str(e) if isinstance(e, BadLine) else "not JSON"
                    out.problems.append(f"{path.name}:{n}: {why}")
                continue
            if rec.model != model:
                out.other_models += 1
                continue
            if since_ts is not None and rec.ts < since_ts:
                out.before_since += 1
                continue
            ident = (rec.request_id, rec.image_index)
            if ident in seen:  # a retried write: count once
                out.duplicates += 1
                continue
            seen.add(ident)
            out.predictions.append(rec)
    out.predictions.sort(key=lambda r: r.key)
    return out


@dataclass
class Labels:
    by_sha: dict[str, list[tuple[int, float, float, float, float]]]
    files: int = 0
    bad: int = 0
    unknown: int = 0  # labels whose image is not in the log
    problems: list[str] = field(default_factory=list)

    def report(self) -> dict[str, object]:
        return {"labelled_images": len(self.by_sha), "label_files": self.files, "bad": self.bad,
                "unknown_images": self.unknown, "problems": self.problems}


def read_labels(labels_dir: Path | None, labels_csv: Path | None, *, n_classes: int,
                predictions: list[LoggedPrediction]) -> Labels:
    """Labels of logged images, keyed by image sha256; unreadable files and labels of unknown images are counted."""
    known = {p.image_sha256 for p in predictions}
    by_request = {(p.request_id, p.image_index): p.image_sha256 for p in predictions}
    out = Labels(by_sha={})
    if labels_dir is not None and labels_dir.is_dir():
        for path in sorted(labels_dir.glob("*.txt")):
            sha = path.stem.lower()
            if not _SHA.match(sha):
                continue
            out.files += 1
            _add(out, sha, path, path.name, known, n_classes)
    if labels_csv is not None and labels_csv.is_file():
        _read_csv(out, labels_csv, known, by_request, n_classes)
    return out


def _read_csv(out: Labels, path: Path, known: set[str], by_request: dict[tuple[str, int], str],
              n_classes: int) -> None:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        out.bad += 1
        out.problems.append(f"{path.name}: unreadable ({type(e).__name__})")
        return
    for n, row in enumerate(rows, 2):
        where = f"{path.name}:{n}"
        rel = (row.get("label_path") or "").strip()
        sha = (row.get("sha256") or "").strip().lower()
        rid = (row.get("request_id") or "").strip()
        if not rel or not (sha or rid):
            out.bad += 1
            _problem(out, f"{where}: needs label_path and sha256 or request_id")
            continue
        if not sha:
            try:
                idx = int((row.get("image_index") or "0").strip())
            except ValueError:
                out.bad += 1
                _problem(out, f"{where}: image_index is not an integer")
                continue
            sha = by_request.get((rid, idx), "")
            if not sha:
                out.unknown += 1
                continue
        label = (path.parent / rel).resolve()
        out.files += 1
        _add(out, sha, label, where, known, n_classes)


def _add(out: Labels, sha: str, path: Path, where: str, known: set[str], n_classes: int) -> None:
    if sha not in known:
        out.unknown += 1
        return
    try:
        text = path.read_text(encoding="utf-8")
        rows = parse_label_text(text, where, n_classes)
    except (OSError, UnicodeDecodeError) as e:
        out.bad += 1
        _problem(out, f"{where}: unreadable label file ({type(e).__name__})")
        return
    except ValueError as e:  # DataError is a UserError; ours: one bad file is counted, not fatal
        out.bad += 1
        _problem(out, getattr(e, "message", str(e)))
        return
    out.by_sha[sha] = rows


def parse_label_text(text: str, where: str, n_classes: int) -> list[tuple[int, float, float, float, float]]:
    """YOLO rows (class, cx, cy, w, h) of one delayed label file; ValueError naming `where:line` on any problem.

    The project's one label parser (`domain/labels.py`, CONTRACTS §4) when this build has it; until then the
    dataset checker's rule per row (`services.dataset._check_label_line`): the same rows and messages as `pfp split`.
    """
    try:
        from pfp_mlops.domain.labels import parse_label_text as one_parser  # type: ignore[import-not-found]
    except ImportError:
        one_parser = None
    if one_parser is not None:
        boxes, problems = one_parser(text, n_classes=n_classes)
        if problems:
            raise ValueError(f"{where}:{problems[0].line}: {problems[0].message}")
        return [(b.cls, b.cx, b.cy, b.w, b.h) for b in boxes]
    from pfp_mlops.domain.errors import DataError
    from pfp_mlops.services.dataset import _check_label_line

    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls = _check_label_line(fields, f"{where}:{n}", n_classes)
        except DataError as e:
            raise ValueError(e.message) from None
        cx, cy, w, h = (float(x) for x in fields[1:])
        rows.append((cls, cx, cy, w, h))
    return rows


def _problem(out: Labels, text: str) -> None:
    if len(out.problems) < MAX_EXAMPLES:
        out.problems.append(text)


def stored_image(log_dir: Path, sha: str) -> Path | None:
    """The image serve stored for this sha256 (`<dir>/images/<sha[:2]>/<sha>.<ext>`), if it did."""
    folder = log_dir / "images" / sha[:2]
    if not folder.is_dir():
        return None
    found = sorted(folder.glob(f"{sha}.*"))
    return found[0] if found else None
