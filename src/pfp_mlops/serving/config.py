"""The `serve:` section of the pipeline YAML (CLI options and environment override it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictionLogConfig(_Strict):
    """Where and how each answered image is logged (schema 1, read by `pfp monitor`)."""

    enabled: bool = True
    dir: Path | None = None  # default <PFP_HOME>/predictions; PFP_PREDICTION_LOG_DIR overrides
    store_images: bool = True
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=1024)  # rotate a worker's file past this size
    max_age_s: float = Field(default=3600, gt=0)  # ... or after this long (an S3 batch at least this often)
    queue_size: int = Field(default=10000, gt=0)  # lines waiting for the writer; beyond: dropped and counted
    s3_uri: str | None = None  # s3://bucket/prefix: rotated files are uploaded there (batches)


class ServeConfig(_Strict):
    alias: str | None = None  # default: registry.production_alias
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    poll_seconds: float = Field(default=5.0, gt=0)
    max_request_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    graceful_timeout_s: float = Field(default=30.0, gt=0)
    confirm_timeout_s: float = Field(default=60.0, gt=0)  # how long promote/validate/rollback wait for --serve-url
    prediction_log: PredictionLogConfig = PredictionLogConfig()
