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


def test_prediction_log_travels_through_s3_to_the_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """serve's writer puts every finished file at <prefix>/<file name> and each stored image at
    <prefix>/images/<sha[:2]>/<sha>.png, byte for byte; `pfp monitor` with monitor.log_s3_uri mirrors the prefix
    (a rerun downloads only what is new) and reads the log from the mirror (label-template lists the logged images
    with their mirrored copies)."""
    import csv

    import boto3
    import yaml
    from moto.server import ThreadedMotoServer
    from tests.helpers import pfp_json

    from pfp_mlops.adapters.s3_upload import uploader
    from pfp_mlops.serving.images import read_image
    from pfp_mlops.serving.predlog import PredictionLog, log_lines

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="logs")
        put = uploader("s3://logs/serve/predictions", endpoint=endpoint, key_id="k", secret="s")
        imgs = []
        for shade in (0, 80, 160):
            buf = io.BytesIO()
            Image.new("RGB", (4, 4), (shade, shade, shade)).save(buf, format="PNG")
            imgs.append(read_image(0, base64.b64encode(buf.getvalue()).decode()))
        served = tmp_path / "served"
        plog = PredictionLog(served, max_bytes=2048, upload=put).start()
        for i in range(8):
            img = imgs[i % 3]
            plog.put(log_lines(request_id=f"{i:032x}", ts=1764594000.0 + i, model="pfp-detector", version=1,
                               alias="production", run_id="r" * 32, images=[img], boxes=[[]], latency_ms=5.0)
                     + [json.dumps({"pad": "x" * 600})], [img])  # the padding line: several files, skipped as bad
        plog.close()
        local = {p.name: p.read_bytes() for p in served.glob("predictions*.jsonl")}
        listed = s3.list_objects_v2(Bucket="logs", Prefix="serve/predictions/")["Contents"]
        remote = {o["Key"].removeprefix("serve/predictions/"): s3.get_object(Bucket="logs", Key=o["Key"])["Body"]
                  .read() for o in listed}
        assert len(local) >= 2 and {k: v for k, v in remote.items() if k.endswith(".jsonl")} == local
        assert {k: v for k, v in remote.items() if k.startswith("images/")} == \
            {f"images/{i.sha256[:2]}/{i.sha256}.png": i.data for i in imgs}

        project = tmp_path / "project"
        project.mkdir()
        (project / "cfg.yaml").write_text(yaml.safe_dump({"monitor": {"log_s3_uri": "s3://logs/serve/predictions"}}))
        monkeypatch.chdir(project)
        monkeypatch.setenv("PFP_HOME", str(project / ".pfp"))
        s3_env = {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
        for k, v in s3_env.items():
            monkeypatch.setenv(k, v)
        out = project / "to_label.csv"
        code, body = pfp_json("monitor", "label-template", "--config", "cfg.yaml", "--out", str(out))
        assert code == 0, body
        rows = list(csv.DictReader(out.open()))
        mirror = project / ".pfp" / "monitor" / "s3-mirror"
        assert sorted(r["sha256"] for r in rows) == sorted(i.sha256 for i in imgs)
        assert all(Path(r["image"]).is_file() and Path(r["image"]).parent.parent.parent == mirror for r in rows)
        assert {p.name: p.read_bytes() for p in mirror.glob("predictions*.jsonl")} == local
        from pfp_mlops.adapters.s3_upload import mirror as mirror_prefix

        again = mirror_prefix("s3://logs/serve/predictions", mirror, endpoint=endpoint, key_id="k", secret="s")
        assert again["downloaded"] == 0 and again["objects"] == len(remote)
    finally:
        server.stop()


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
