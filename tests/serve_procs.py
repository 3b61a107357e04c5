"""Real model-server processes on loopback for the serving tests and the serving benchmark: `pfp serve` and
`mlflow models serve` of the same registered model, started, waited for and stopped the same way."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
# A weak test-sized model finds little at the default 0.25: both servers get the same lower threshold through
# MLflow's own SERVING_MODEL_CONFIG, so the compared answers hold detections.
MODEL_CONFIG = json.dumps({"conf": 0.001, "imgsz": 96, "iou": 0.7})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(env: dict[str, str]) -> dict[str, str]:
    """PATH with the venv's bin; the lower threshold unless the caller set SERVING_MODEL_CONFIG ("" = none)."""
    out = {"SERVING_MODEL_CONFIG": MODEL_CONFIG, **env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    if not out["SERVING_MODEL_CONFIG"]:
        del out["SERVING_MODEL_CONFIG"]
    return out


def start_pfp_serve(port: int, *, env: dict[str, str], cwd: Path, log: Path, args: list[str]) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([str(BIN / "pfp"), "serve", "--port", str(port), *args], env=server_env(env),
                                cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def start_mlflow_serve(model_uri: str, port: int, *, env: dict[str, str], cwd: Path, log: Path,
                       workers: int = 1) -> subprocess.Popen:
    with open(log, "ab") as fh:  # it execs `uvicorn` by name: the venv's bin is on PATH
        return subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                                env=server_env(env), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def get_json(url: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


def wait_until(proc: subprocess.Popen, log: Path, check: Callable[[], bool], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("server not ready in time: " + log.read_text(errors="replace")[-3000:])
        time.sleep(0.3)


def all_current(url: str, version: int | None = None) -> bool:
    status, body = get_json(url + "/v2/health/ready")
    return status == 200 and bool(body.get("all_current")) and (version is None or body.get("version") == version)


def pinged(url: str) -> bool:
    with urllib.request.urlopen(url + "/ping", timeout=2) as r:
        return r.status == 200


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 30) -> int | None:
    """The server and its workers (the whole process group); SIGKILL when SIGTERM is not enough."""
    for s, w in ((sig, wait_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(w)
        except subprocess.TimeoutExpired:
            continue
    return None
