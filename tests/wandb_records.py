"""Read W&B offline run files (`run-<id>.wandb`) back with the SDK's own record types.

wandb 0.31 has no Python reader any more (the transaction log is written by the Go `wandb-core`; `wandb sync` only
uploads it). The file is a LevelDB-style log — a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB
blocks of chunks (crc32 u32, length u16, type u8: full / first / middle / last) — whose payloads are
`wandb.proto.wandb_internal_pb2.Record` messages; those are decoded by the SDK's protobuf classes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_HEADER = 7


def _chunks(data: bytes):
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError("not a W&B transaction log")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if kind == 0 and length == 0:  # zero padding up to the next block
            pos += left
            continue
        payload = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            yield payload
        elif kind == 2:
            pending = payload
        elif kind == 3:
            pending += payload
        elif kind == 4:
            yield pending + payload
            pending = b""


def _items(update) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in update:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    path: Path
    id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def read_run(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun(path)
    for raw in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.id, run.group, run.job_type, run.name = r.run_id, r.run_group, r.job_type, r.display_name
            run.tags = list(r.tags) or run.tags
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(rec.config.update))
        elif kind == "history":
            run.history.append(_items(rec.history.item))
        elif kind == "summary":
            run.summary.update(_items(rec.summary.update))
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under a `wandb/` folder (the `latest-run` link skipped)."""
    return [read_run(p) for p in sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))]
