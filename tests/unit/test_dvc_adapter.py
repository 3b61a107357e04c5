"""adapters/dvc.py: the DVC data version of data/ and the project's remote, without importing dvc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pfp_mlops.adapters.dvc import data_version, dir_md5, dvc_remote

DVC = str(Path(sys.executable).parent / "dvc")


def _data(root: Path) -> Path:
    d = root / "data"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    (d / "images" / "a.png").write_bytes(b"\x89PNG fake a")
    (d / "images" / "b.png").write_bytes(b"\x89PNG fake b")
    (d / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (d / "dataset_info.csv").write_text("image_path,label_path\nimages/a.png,labels/a.txt\nimages/b.png,\n")
    return d


def _dvc(*args: str, cwd: Path) -> None:
    subprocess.run([DVC, *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})


def test_computed_hash_equals_what_dvc_add_records(tmp_path, monkeypatch):
    """The hash computed without dvc is the one `dvc add` writes, with `.dvcignore`d files (labels.cache) left out."""
    monkeypatch.chdir(tmp_path)
    data = _data(tmp_path)
    _dvc("init", "--no-scm", "-q", cwd=tmp_path)
    (tmp_path / ".dvcignore").write_text("*.cache\n")
    (data / "labels.cache").write_bytes(b"ultralytics label cache")
    before = data_version(data)
    assert before.source == "computed" and before.md5.endswith(".dir") and before.nfiles == 4
    _dvc("add", "-q", "data", cwd=tmp_path)
    after = data_version(data)
    assert after.source == "data.dvc"
    assert after.md5 == before.md5 == dir_md5(data)[0]


def test_a_stale_dvc_file_is_not_trusted(tmp_path, monkeypatch):
    """When data/ changed since `dvc add`, the version is computed from the files and says the record is stale."""
    monkeypatch.chdir(tmp_path)
    data = _data(tmp_path)
    md5, n, size = dir_md5(data)
    record = f"outs:\n- md5: {md5}\n  size: {size}\n  nfiles: {n}\n  hash: md5\n  path: data\n"
    (tmp_path / "data.dvc").write_text(record)
    assert data_version(data).md5 == md5
    (data / "images" / "c.png").write_bytes(b"new")
    v = data_version(data)
    assert v.source == "computed (data.dvc is stale)" and v.md5 != md5


def test_dvc_lock_dep_is_read_when_there_is_no_dvc_file(tmp_path, monkeypatch):
    """A pipeline that lists data as a stage dep records its hash in dvc.lock; that is the data version."""
    monkeypatch.chdir(tmp_path)
    data = _data(tmp_path)
    md5, n, size = dir_md5(data)
    (tmp_path / "dvc.lock").write_text(
        f"schema: '2.0'\nstages:\n  split:\n    cmd: pfp split\n    deps:\n    - path: data\n      md5: {md5}\n"
        f"      size: {size}\n      nfiles: {n}\n")
    assert (data_version(data).source, data_version(data).md5) == ("dvc.lock", md5)
    assert data_version(tmp_path / "nope").source == "missing"


@pytest.mark.parametrize("local, env, expected", [
    ("", {}, (None, None)),
    ("['remote \"storage\"']\n    endpointurl = http://127.0.0.1:9000\n", {}, ("http://127.0.0.1:9000", "dvc config")),
    ("", {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9001"}, ("http://127.0.0.1:9001", "AWS_ENDPOINT_URL_S3")),
])
def test_default_remote_with_endpoint_from_local_config_or_environment(tmp_path, monkeypatch, local, env, expected):
    """The committed config names the remote; the endpoint comes from config.local or the environment."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://dvc/pfp\n")
    (tmp_path / ".dvc" / "config.local").write_text(local)
    r = dvc_remote(tmp_path)
    assert (r.name, r.url) == ("storage", "s3://dvc/pfp")
    assert (r.endpointurl, r.endpoint_source) == expected
    assert dvc_remote(tmp_path / "elsewhere") is None


def test_the_projects_own_dvc_config_has_no_secrets():
    """The committed .dvc/config names a remote and nothing secret: keys and endpoints come from the environment."""
    text = (Path(__file__).resolve().parents[2] / ".dvc" / "config").read_text()
    assert "url = s3://" in text
    for secret in ("access_key_id", "secret_access_key", "endpointurl", "password"):
        assert secret not in text
