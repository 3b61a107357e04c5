"""The prediction log (schema 1, CONTRACTS §3): one JSON line per answered image, written off the request path.

A request thread only puts a record on a bounded queue (never blocks: a full queue drops and counts); one
writer thread per worker process appends lines to its own file `predictions-<time>-<pid>-<seq>.jsonl`, starts a new
file past `max_bytes` or `max_age_s`, stores each image once under `images/<sha[:2]>/<sha>.<ext>`, and hands
each finished file to an optional uploader (the S3 batch). Readers take every `predictions*.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("pfp.serve")
SCHEMA = 1


def iso_time(ts: float) -> str:
    """`2026-12-01T13:00:00.123Z` (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def log_lines(*, request_id: str, ts: float, model: str, version: int, alias: str, run_id: str,
              images: list[Any], boxes: list[list[dict[str, Any]]], latency_ms: float) -> list[str]:
    """The lines of one answered request: one per image, same request_id, in request order."""
    out = []
    for img, found in zip(images, boxes, strict=True):
        out.append(json.dumps({
            "schema": SCHEMA, "request_id": request_id, "image_index": img.index, "ts": round(ts, 3),
            "time": iso_time(ts), "model": model, "version": int(version), "alias": alias, "run_id": run_id,
            "image_sha256": img.sha256, "width": img.width, "height": img.height,
            "latency_ms": round(latency_ms, 2), "boxes": found,
        }, separators=(",", ":")))
    return out


class PredictionLog:
    """Background writer of one worker's prediction-log files."""

    def __init__(self, directory: Path, *, store_images: bool = True, max_bytes: int = 64 << 20,
                 max_age_s: float = 3600, queue_size: int = 10000,
                 upload: Callable[[Path, str], None] | None = None, on_drop: Callable[[], None] | None = None) -> None:
        self.dir = directory
        self.store_images = store_images
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.upload = upload
        self.on_drop = on_drop
        self._q: queue.Queue[tuple[list[str], list[Any]] | None] = queue.Queue(maxsize=queue_size)
        self._fh: Any = None
        self._path: Path | None = None
        self._opened = 0.0
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="pfp-prediction-log", daemon=True)
        self.dropped = 0
        self.written = 0

    def start(self) -> PredictionLog:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def put(self, lines: list[str], images: list[Any]) -> None:
        """Never blocks a request: a full queue drops the record (counted, warned once per 1000)."""
        try:
            self._q.put_nowait((lines, images))
        except queue.Full:
            self.dropped += len(lines)
            if self.on_drop is not None:
                self.on_drop()
            if self.dropped % 1000 == len(lines) % 1000:
                log.warning("prediction log queue full: %d lines dropped so far", self.dropped)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close (and upload) the current file."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout_s)

    @property
    def path(self) -> Path | None:
        return self._path

    def _run(self) -> None:
        while True:
            try:
                item = self._q.get(timeout=1.0)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                self._finish_file()
                return
            try:
                if item:
                    self._write(*item)
                if self._fh is not None and time.time() - self._opened >= self.max_age_s:
                    self._finish_file()
            except OSError as e:  # a full or broken disk must not kill the writer
                log.error("prediction log: %s", e)

    def _write(self, lines: list[str], images: list[Any]) -> None:
        if self.store_images:
            for img in images:
                self._store_image(img)
        if self._fh is None:
            self._open()
        self._fh.write("".join(line + "\n" for line in lines))
        self._fh.flush()
        self.written += len(lines)
        if self._fh.tell() >= self.max_bytes:
            self._finish_file()

    def _open(self) -> None:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"
        self._seq += 1
        self._path = self.dir / f"predictions-{stamp}-{os.getpid()}-{self._seq:04d}.jsonl"
        self._fh = self._path.open("a", encoding="utf-8")
        self._opened = now

    def _finish_file(self) -> None:
        if self._fh is None:
            return
        self._fh.close()
        done, self._fh = self._path, None
        if self.upload is not None and done is not None:
            try:
                self.upload(done, done.name)
            except Exception as e:  # noqa: BLE001 - an upload failure is logged; the local file stays
                log.error("prediction log upload of %s failed: %s", done.name, e)

    def _store_image(self, img: Any) -> None:
        target = self.dir / "images" / img.sha256[:2] / f"{img.sha256}.{img.ext}"
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(img.data)
        os.replace(tmp, target)
        if self.upload is not None:  # the monitor shadow-scores stored images: they travel with the log
            key = f"images/{img.sha256[:2]}/{target.name}"
            try:
                self.upload(target, key)
            except Exception as e:  # noqa: BLE001 - logged; the local copy stays
                log.error("prediction log upload of %s failed: %s", key, e)
