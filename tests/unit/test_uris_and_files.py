"""The one URI masker and the one atomic writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfp_mlops.fsutil import atomic_write_json, atomic_write_text
from pfp_mlops.uris import public_uri


@pytest.mark.parametrize(("uri", "masked", "dropped"), [
    ("http://u:secret@mlflow.example:5000/x", "http://***@mlflow.example:5000/x", "http://mlflow.example:5000/x"),
    ("postgresql://pfp:pw@db/mlflow", "postgresql://***@db/mlflow", "postgresql://db/mlflow"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("s3://bucket/path@v2/x", "s3://bucket/path@v2/x", "s3://bucket/path@v2/x"),  # an @ in the path is no userinfo
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("", "", ""),
])
def test_public_uri_masks_or_drops_userinfo_only(uri, masked, dropped):
    assert public_uri(uri) == masked
    assert public_uri(uri, mask="") == dropped
    assert "secret" not in public_uri(uri) and "pw@" not in public_uri(uri)


def test_atomic_write_replaces_whole_and_leaves_no_temp_file(tmp_path: Path):
    target = tmp_path / "sub" / "state.json"
    atomic_write_json(target, {"a": 1}, indent=1)
    atomic_write_text(target, json.dumps({"b": 2}))
    assert json.loads(target.read_text()) == {"b": 2}
    with pytest.raises(UnicodeEncodeError):  # fails mid-write, after the temp file exists
        atomic_write_text(target, "half \udc80 written")
    assert json.loads(target.read_text()) == {"b": 2}  # the old file, whole
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]
