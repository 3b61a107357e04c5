"""Reachability probes for `pfp doctor`: an MLflow server over plain HTTP, an S3 endpoint through boto3, the GPU.

Short timeouts and no retries: doctor answers in seconds when a service is down. Credentials are used, never
returned: every result is a short message safe to print.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str
    data: dict[str, Any] | None = None


def http_json(url: str, *, username: str | None = None, password: str | None = None,
              timeout: float = TIMEOUT_S) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - the configured server
        body = r.read()
    try:
        return json.loads(body or b"null")
    except json.JSONDecodeError:
        return body.decode(errors="replace")


def mlflow_server(uri: str, *, username: str | None = None, password: str | None = None) -> Probe:
    """Reachable? Which backend store (server-info) and where new experiments keep artifacts (proxy or direct)?"""
    base = uri.rstrip("/")
    try:
        http_json(f"{base}/health", username=username, password=password)
    except urllib.error.HTTPError as e:
        return Probe(False, f"unhealthy: HTTP {e.code} from {base}/health")
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Probe(False, f"unreachable: {type(reason).__name__}: {str(reason)[:120]}")
    data: dict[str, Any] = {}
    try:
        info = http_json(f"{base}/api/3.0/mlflow/server-info", username=username, password=password)
        store = (info or {}).get("store_type") if isinstance(info, dict) else None
        data["store_type"] = {"SqlStore": "SQL database", "FileStore": "file store"}.get(store, store or "unknown")
    except (urllib.error.URLError, OSError):
        data["store_type"] = "unknown (no server-info endpoint)"
    try:
        exp = http_json(f"{base}/api/2.0/mlflow/experiments/get?experiment_id=0", username=username,
                        password=password)
        loc = ((exp or {}).get("experiment") or {}).get("artifact_location", "")
        data["artifacts"] = "proxied by the server" if loc.startswith("mlflow-artifacts:") else (loc or "unknown")
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return Probe(False, f"reachable but refused the credentials (HTTP {e.code})", data)
        data["artifacts"] = "unknown"
    except (urllib.error.URLError, OSError):
        data["artifacts"] = "unknown"
    return Probe(True, f"reachable; backend: {data['store_type']}; artifacts: {data['artifacts']}", data)


def s3(endpoint: str | None, key_id: str | None, secret: str | None, *, bucket: str | None = None) -> Probe:
    """List buckets (or head one) with the configured credentials; the message never contains them."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"max_attempts": 1})
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id or None,
                          aws_secret_access_key=secret or None, config=cfg, region_name="us-east-1")
    try:
        if bucket:
            client.head_bucket(Bucket=bucket)
            return Probe(True, f"bucket {bucket!r} reachable with the configured credentials")
        names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
        return Probe(True, f"reachable with the configured credentials; buckets: {', '.join(names) or 'none'}")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "?")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        what = f"bucket {bucket!r}" if bucket else "the endpoint"
        return Probe(False, f"{what} refused the request: {code} (HTTP {status})")
    except BotoCoreError as e:
        return Probe(False, f"unreachable: {type(e).__name__}")


def gpu() -> Probe:
    try:
        import torch
    except ImportError:
        return Probe(False, "torch is not installed")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Probe(True, f"CUDA {torch.version.cuda}: {len(names)} device(s): {', '.join(names)}",
                     {"cuda_devices": len(names)})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Probe(True, "Apple MPS available", {"cuda_devices": 0})
    return Probe(False, "no GPU visible to torch (CPU only)", {"cuda_devices": 0})
