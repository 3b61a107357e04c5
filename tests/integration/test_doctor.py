"""`pfp doctor` without servers: the embedded defaults pass, a dead MLflow, S3 or DVC endpoint exits 3.

The same command against the real servers: tests/topology/test_http_topology.py.
"""

from __future__ import annotations

import pytest
from tests.helpers import pfp, pfp_json
from tests.servers import free_port

SECRET = "doctor-secret-must-not-show"


def _checks(out: dict) -> dict[str, dict]:
    return {c["name"]: c for c in out["result"]["checks"]}


def test_embedded_defaults_are_healthy(workdir):
    """With nothing configured: Python, packages, the embedded SQLite store, offline switches; exit 0."""
    code, out = pfp_json("doctor", "--no-gpu")
    assert code == 0, out
    checks = _checks(out)
    assert checks["python"]["status"] == "ok"
    assert checks["package mlflow"]["status"] == "ok"
    assert "embedded SQLite" in checks["mlflow"]["detail"]
    assert checks["offline"]["status"] == "ok"
    assert "gpu" not in checks


@pytest.mark.slow  # `pfp doctor` imports torch (~2 s): the fast tier stays under 60 s
def test_gpu_row_reports_what_torch_sees(workdir):
    """The GPU row says whether torch sees a device; on a CPU machine that is information, not a failure."""
    code, out = pfp_json("doctor")
    assert code == 0
    assert _checks(out)["gpu"]["status"] in ("ok", "info")


@pytest.mark.parametrize("env, failing", [
    ({"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, "mlflow"),
    ({"MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:{port}"}, "s3"),
    ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:{port}", "_dvc": "1"}, "dvc remote"),
])
def test_an_unreachable_configured_service_exits_3(workdir, monkeypatch, env, failing):
    """A dead port behind MLflow, S3 or the DVC remote: that row fails, exit 3, and the secret is never printed."""
    port = free_port()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "doctor-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for k, v in env.items():
        if k == "_dvc":
            (workdir / ".dvc").mkdir()
            (workdir / ".dvc" / "config").write_text("[core]\n    remote = s\n['remote \"s\"']\n    url = s3://dvc/x\n")
        else:
            monkeypatch.setenv(k, v.format(port=port))
    code, out = pfp_json("doctor", "--no-gpu")
    assert code == 3
    assert _checks(out)[failing]["status"] == "fail"
    assert "unreachable" in _checks(out)[failing]["detail"]
    r = pfp("doctor", "--no-gpu")
    assert r.exit_code == 3
    assert SECRET not in r.output and SECRET not in str(out)
