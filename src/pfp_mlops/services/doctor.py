"""`pfp doctor`: is this machine ready to run the pipeline against its configured services?

One row per check: Python and key package versions, the declared production runtime, MLflow (reachable, which
backend), the S3 endpoint (reachable with the configured credentials, which are never shown), the DVC remote,
GPU availability and the offline switches. A configured service that cannot be reached makes the exit code 3.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pfp_mlops.domain.models import Result
from pfp_mlops.services.context import Context

PACKAGES = ("pfp-mlops", "mlflow", "ultralytics-opencv-headless", "ultralytics", "torch", "torchvision", "optuna",
            "dvc", "dvc-s3", "boto3", "pandas")
OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass(frozen=True)
class Check(Result):
    name: str
    status: str  # ok / warn / fail / info
    detail: str
    service: bool = False  # a configured service: `fail` means unreachable → exit 3


@dataclass(frozen=True)
class DoctorReport(Result):
    checks: list[Check]
    exit_code: int


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_doctor(ctx: Context, *, check_gpu: bool = True) -> DoctorReport:
    checks = [_python(), *_packages(), _runtime(ctx), _mlflow(ctx), _s3(ctx), _dvc(ctx)]
    if check_gpu:
        checks.append(_gpu(ctx))
    checks.append(_offline())
    code = 3 if any(c.service and c.status == FAIL for c in checks) else 0
    return DoctorReport(checks, code)


def _python() -> Check:
    v = sys.version_info
    detail = f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"
    if v < (3, 11):
        return Check("python", FAIL, detail + "; pfp needs 3.11+")
    if v >= (3, 14):
        return Check("python", WARN, detail + "; 3.14 is untested (README \"Python versions\")")
    return Check("python", OK, detail)


def _packages() -> list[Check]:
    out = []
    for name in PACKAGES:
        v = _version(name)
        if v is None and name == "ultralytics" and _version("ultralytics-opencv-headless"):
            continue  # the headless build is the same package
        if v is None and name == "ultralytics-opencv-headless":
            continue
        out.append(Check(f"package {name}", OK if v else WARN, v or "not installed"))
    return out


def _runtime(ctx: Context) -> Check:
    from pfp_mlops.adapters.packaging import read_production_runtime, runtime_mismatches

    spec = ctx.settings.production_runtime
    if not spec:
        return Check("production runtime", INFO, "not declared (PFP_PRODUCTION_RUNTIME); register checks nothing")
    try:
        reqs = read_production_runtime(spec)
        installed = {"python": platform.python_version()}
        for name, key in (("torch", "torch"), ("torchvision", "torchvision"), ("mlflow", "mlflow"),
                          ("ultralytics-opencv-headless", "ultralytics"), ("ultralytics", "ultralytics")):
            v = _version(name)
            if v and key not in installed:
                installed[key] = v.split("+")[0]
        problems = runtime_mismatches(reqs, installed)
    except Exception as e:  # noqa: BLE001 - a bad declaration is a finding, not a crash
        return Check("production runtime", FAIL, getattr(e, "message", str(e)))
    if problems:
        return Check("production runtime", WARN, f"{'; '.join(reqs)} — not satisfied here: {'; '.join(problems)}")
    return Check("production runtime", OK, f"{'; '.join(reqs)} — satisfied by this environment")


def _mlflow(ctx: Context) -> Check:
    s = ctx.settings
    if s.is_embedded():
        db = s.resolved_home() / "mlflow.db"
        state = "exists" if db.exists() else "created on first use"
        return Check("mlflow", OK, f"embedded SQLite store {db} ({state}); artifacts in {s.artifact_root()}")
    uri = s.mlflow_tracking_uri or ""
    shown = _hide_userinfo(uri)
    if not uri.startswith(("http://", "https://")):
        return Check("mlflow", OK, f"{shown} (database store used directly, not probed)", service=True)
    from pfp_mlops.adapters import probes

    password = s.mlflow_tracking_password.get_secret_value() if s.mlflow_tracking_password else None
    p = probes.mlflow_server(uri, username=s.mlflow_tracking_username, password=password)
    return Check("mlflow", OK if p.ok else FAIL, f"{shown}: {p.detail}", service=True)


def _s3(ctx: Context) -> Check:
    s = ctx.settings
    creds = "keys set" if s.aws_access_key_id and s.aws_secret_access_key else "no keys set"
    if not s.mlflow_s3_endpoint_url:
        return Check("s3", INFO, f"MLFLOW_S3_ENDPOINT_URL not set ({creds}); artifacts go where the MLflow server "
                     "puts them")
    from pfp_mlops.adapters import probes

    secret = s.aws_secret_access_key.get_secret_value() if s.aws_secret_access_key else None
    p = probes.s3(s.mlflow_s3_endpoint_url, s.aws_access_key_id, secret)
    return Check("s3", OK if p.ok else FAIL, f"{s.mlflow_s3_endpoint_url} ({creds}): {p.detail}", service=True)


def _dvc(ctx: Context) -> Check:
    from pfp_mlops.adapters.dvc import data_version, dvc_remote

    remote = dvc_remote(Path.cwd())
    dv = data_version(ctx.cfg.paths.data_dir)
    version = f"data version {dv.md5} ({dv.source})" if dv.md5 else f"no {ctx.cfg.paths.data_dir}/ yet"
    if remote is None:
        return Check("dvc remote", INFO, f"no DVC remote configured here; {version}")
    where = f"{remote.name} = {remote.url}"
    if not remote.url.startswith("s3://"):
        return Check("dvc remote", INFO, f"{where} (not probed); {version}")
    if not remote.endpointurl:
        return Check("dvc remote", INFO, f"{where} on AWS S3 (no endpoint set: not probed; set AWS_ENDPOINT_URL_S3 "
                     f"or `dvc remote modify --local {remote.name} endpointurl URL` for MinIO); {version}")
    from pfp_mlops.adapters import probes

    s = ctx.settings
    bucket = remote.url.removeprefix("s3://").split("/", 1)[0]
    secret = s.aws_secret_access_key.get_secret_value() if s.aws_secret_access_key else None
    p = probes.s3(remote.endpointurl, s.aws_access_key_id, secret, bucket=bucket)
    return Check("dvc remote", OK if p.ok else FAIL,
                 f"{where} at {remote.endpointurl} (from {remote.endpoint_source}): {p.detail}; {version}",
                 service=True)


def _gpu(ctx: Context) -> Check:
    from pfp_mlops.adapters import probes

    p = probes.gpu()
    device = ctx.settings.device
    wants_gpu = device not in ("cpu", "auto")
    if p.ok:
        return Check("gpu", OK, f"{p.detail}; PFP_DEVICE={device}")
    return Check("gpu", FAIL if wants_gpu else INFO, f"{p.detail}; PFP_DEVICE={device}"
                 + (" asks for a GPU" if wants_gpu else ""))


def _offline() -> Check:
    from pfp_mlops.runtime_env import OFFLINE_ENV

    keys = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "MLFLOW_DISABLE_TELEMETRY", "DVC_NO_ANALYTICS", "DO_NOT_TRACK")
    differ = [f"{k}={os.environ.get(k)!s}" for k in keys if os.environ.get(k) != OFFLINE_ENV[k]]
    font = Path(os.environ.get("YOLO_CONFIG_DIR", "")) / "Ultralytics" / "Arial.ttf"
    fonts = "fonts present" if font.is_file() else "font missing (Ultralytics would download it)"
    if differ:
        return Check("offline", WARN, f"overridden: {', '.join(differ)}; {fonts}")
    return Check("offline", OK if font.is_file() else WARN,
                 f"{', '.join(f'{k}={OFFLINE_ENV[k]}' for k in keys)}; "
                 f"YOLO_CONFIG_DIR={os.environ.get('YOLO_CONFIG_DIR')}; "
                 f"{fonts}")


def _hide_userinfo(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
