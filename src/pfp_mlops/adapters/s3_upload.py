"""The prediction log on an S3 prefix (MinIO, AWS): `pfp serve` uploads its finished files and stored images there
in batches; `pfp monitor` mirrors the prefix into a local folder and reads that. Only this module imports boto3 for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import ConfigError, InfraError


def split_s3_uri(uri: str, what: str = "serve.prediction_log.s3_uri") -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"{what} must look like s3://bucket/prefix (got {uri!r})")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def _client(endpoint: str | None, key_id: str | None, secret: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id or None,
                        aws_secret_access_key=secret or None, region_name="us-east-1",
                        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}))


def uploader(uri: str, *, endpoint: str | None, key_id: str | None,
             secret: str | None) -> Callable[[Path, str], None]:
    """A function that puts one file at `<prefix>/<key>` (key: the file's path relative to the log folder, e.g.
    `predictions-….jsonl` or `images/ab/<sha256>.png`); errors propagate to the caller (who logs them)."""
    bucket, prefix = split_s3_uri(uri)
    client = _client(endpoint, key_id, secret)

    def put(path: Path, key: str) -> None:
        client.upload_file(str(path), bucket, f"{prefix}/{key}" if prefix else key)

    return put


def mirror(uri: str, dest: Path, *, endpoint: str | None, key_id: str | None, secret: str | None) -> dict[str, Any]:
    """Copy what is new under the prefix into `dest` (same relative paths); an object already there with the same
    size is skipped, so a rerun downloads only what serve uploaded since. Each file lands atomically (temp + rename),
    so a reader never sees half an object. Returns counts for the report; InfraError when S3 cannot be read."""
    bucket, prefix = split_s3_uri(uri, "monitor.log_s3_uri")
    client = _client(endpoint, key_id, secret)
    root = dest.resolve()
    listed = downloaded = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix
                                                                      else ""):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) + 1:] if prefix else obj["Key"]
                target = (root / rel).resolve()
                if not rel or rel.endswith("/") or root not in target.parents:  # folders; keys escaping dest
                    continue
                listed += 1
                if target.is_file() and target.stat().st_size == obj["Size"]:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
                client.download_file(bucket, obj["Key"], str(tmp))
                os.replace(tmp, target)
                downloaded += 1
    except Exception as e:  # botocore's errors, without importing them at module level
        if type(e).__module__.split(".")[0] in ("botocore", "boto3", "s3transfer"):
            raise InfraError(f"S3 unreachable or refusing {uri}: {type(e).__name__}: {str(e)[:200]}") from None
        raise
    return {"uri": uri, "objects": listed, "downloaded": downloaded, "mirror": str(dest)}
