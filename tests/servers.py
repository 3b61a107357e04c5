"""Session-scoped fixtures for the production topology: PostgreSQL, an S3 endpoint (moto) and an MLflow server.

The processes come from `scripts/local_stack.py` (the same code a user without Docker runs through
`scripts/local-stack.sh`). They start once per session, on loopback ports chosen at random, and are stopped at the
end. A missing PostgreSQL is an error, never a skip: `.ci/run` installs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from local_stack import (  # noqa: E402 - scripts/ is not a package
    ARTIFACT_BUCKET,
    DVC_BUCKET,
    LocalStack,
    free_port,
)

__all__ = ["ARTIFACT_BUCKET", "DVC_BUCKET", "LocalStack", "free_port", "stack", "stack_env", "s3_client"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """PostgreSQL + moto S3 + MLflow server (artifacts proxied to s3://mlflow/), for the whole session."""
    s = LocalStack(root=tmp_path_factory.mktemp("stack"))
    s.start()
    sys.stderr.write(f"\n[topology] local stack up in {s.timings['total_s']}s: {s.timings}\n")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def stack_env(stack: LocalStack, workdir: Path) -> dict[str, str]:
    """os.environ for a subprocess that talks to the stack, configured by environment variables only."""
    return {**os.environ, **stack.client_env(), "PFP_HOME": str(workdir / ".pfp")}


@pytest.fixture(scope="session")
def s3_client(stack: LocalStack):
    import boto3

    env = stack.client_env()
    return boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
