"""Upload finished prediction-log files to an S3 prefix (MinIO, AWS): the optional batch shipping of `pfp serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pfp_mlops.domain.errors import ConfigError


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"serve.prediction_log.s3_uri must look like s3://bucket/prefix (got {uri!r})")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def uploader(uri: str, *, endpoint: str | None, key_id: str | None, secret: str | None) -> Callable[[Path], None]:
    """A function that puts one file at `<prefix>/<file name>`; errors propagate to the caller (who logs them)."""
    import boto3
    from botocore.config import Config

    bucket, prefix = split_s3_uri(uri)
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id or None,
                          aws_secret_access_key=secret or None, region_name="us-east-1",
                          config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}))

    def put(path: Path) -> None:
        key = f"{prefix}/{path.name}" if prefix else path.name
        client.upload_file(str(path), bucket, key)

    return put
