"""Parts of `pfp serve` against real services, without a model: the prediction log shipped to S3 (moto's S3
server on loopback) and the /admin/reload guard (token, loopback-only) on starlette requests."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from tests.serve_procs import free_port

pytestmark = pytest.mark.slow


def test_finished_prediction_log_files_are_uploaded_to_s3(tmp_path: Path):
    """With an s3:// prefix, every finished file lands at <prefix>/<file name>, byte for byte."""
    import boto3
    from moto.server import ThreadedMotoServer

    from pfp_mlops.adapters.s3_upload import uploader
    from pfp_mlops.serving.images import read_image
    from pfp_mlops.serving.predlog import PredictionLog

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="logs")
        put = uploader("s3://logs/serve/predictions", endpoint=endpoint, key_id="k", secret="s")
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, format="PNG")
        img = read_image(0, base64.b64encode(buf.getvalue()).decode())
        plog = PredictionLog(tmp_path, max_bytes=2048, upload=put).start()
        for i in range(8):
            plog.put([json.dumps({"schema": 1, "i": i, "pad": "x" * 600})], [img])
        plog.close()
        local = {p.name: p.read_bytes() for p in tmp_path.glob("predictions*.jsonl")}
        listed = s3.list_objects_v2(Bucket="logs", Prefix="serve/predictions/")["Contents"]
        remote = {o["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket="logs", Key=o["Key"])["Body"].read()
                  for o in listed}
    finally:
        server.stop()
    assert len(local) >= 2 and remote == local


def test_s3_uri_must_name_a_bucket():
    from pfp_mlops.adapters.s3_upload import split_s3_uri
    from pfp_mlops.domain.errors import ConfigError

    assert split_s3_uri("s3://b/a/b/") == ("b", "a/b")
    assert split_s3_uri("s3://b") == ("b", "")
    for bad in ("s3://", "http://x/y", "bucket/prefix"):
        with pytest.raises(ConfigError):
            split_s3_uri(bad)


def _request(host: str, auth: str | None = None):
    from starlette.requests import Request

    headers = [(b"authorization", auth.encode())] if auth else []
    return Request({"type": "http", "method": "POST", "path": "/admin/reload", "headers": headers,
                    "client": (host, 5000), "query_string": b""})


@pytest.mark.parametrize(("host", "auth", "token", "expected"), [
    ("127.0.0.1", None, None, None),
    ("::1", None, None, None),
    ("10.0.0.7", None, None, 403),
    ("10.0.0.7", "Bearer s3cret", "s3cret", None),
    ("127.0.0.1", None, "s3cret", 401),  # with a token, loopback needs it too
    ("10.0.0.7", "Bearer wrong", "s3cret", 401),
    ("10.0.0.7", "s3cret", "s3cret", 401),
])
def test_admin_reload_guard(host, auth, token, expected):
    """PFP_SERVE_TOKEN set: a matching bearer token; unset: loopback clients only."""
    from pfp_mlops.serving.app import _denied

    denied = _denied(_request(host, auth), token)
    assert (denied[0] if denied else None) == expected
    if denied:
        assert "s3cret" not in denied[1]
