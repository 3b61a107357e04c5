"""Bad input through the public entry point: one clear line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import pfp, write_config


def _stderr_ok(stderr: str, needle: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pfp: error: ") and needle in lines[0]
    assert "Traceback" not in stderr


def _demo(workdir: Path, n: int = 24) -> Path:
    cfg = write_config(workdir / "cfg.yaml", demo={"n_images": n, "imgsz": 64, "seed": 0},
                       split={"allow_missing_classes": True})
    assert pfp("demo-data", "--config", str(cfg)).exit_code == 0
    return cfg


CSV_CASES = {
    "missing": (None, "not found"),
    "empty": ("", "empty"),
    "header only": ("image_path,label_path\n", "no rows"),
    "wrong delimiter": ("image_path;label_path\nimages/img_000000.png;labels/img_000000.txt\n", "delimiter"),
    "missing column": ("path,label\nimages/img_000000.png,x\n", "missing required column"),
    "duplicate rows": ("image_path\nimages/img_000000.png\nimages/img_000000.png\n", "duplicate"),
    "escaping path": ("image_path\n../images/x.png\n", "escapes the data root"),
    "absolute path": ("image_path\n/etc/images/passwd.png\n", "absolute"),
    "image missing": ("image_path\nimages/nope.png\n", "image file not found"),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_dataset_csv(workdir, case):
    """Each malformed dataset_info.csv exits 2 with one line naming the problem; no split files are written."""
    cfg = _demo(workdir)
    content, needle = CSV_CASES[case]
    csv = workdir / "data" / "dataset_info.csv"
    if content is None:
        csv.unlink()
    else:
        csv.write_text(content)
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, needle)
    assert not (workdir / "dataset" / "split_manifest.json").exists()


def test_non_utf8_csv(workdir):
    """Non-UTF-8 bytes are reported with the line number."""
    cfg = _demo(workdir)
    (workdir / "data" / "dataset_info.csv").write_bytes(b"image_path\nimages/caf\xe9.png\n")
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, ":2: not valid UTF-8")


LABEL_CASES = {
    "wrong field count": ("0 0.5 0.5 0.2\n", "expected 5 fields"),
    "class out of range": ("7 0.5 0.5 0.2 0.2\n", "class id 7 out of range"),
    "coordinate outside": ("0 1.5 0.5 0.2 0.2\n", "outside [0, 1]"),
    "zero-size box": ("0 0.5 0.5 0.0 0.2\n", "zero-size box"),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_bad_label_file(workdir, case):
    """A bad YOLO label exits 2 and names the label file and line."""
    cfg = _demo(workdir)
    content, needle = LABEL_CASES[case]
    (workdir / "data" / "labels" / "img_000003.txt").write_text(content)
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, needle)
    assert "img_000003.txt:1" in r.stderr


def test_missing_label_and_not_an_image(workdir):
    """A missing label file and a non-image file are both exit 2 with the path named."""
    cfg = _demo(workdir)
    (workdir / "data" / "labels" / "img_000001.txt").unlink()
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "label file not found: labels/img_000001.txt")
    (workdir / "data" / "labels" / "img_000001.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (workdir / "data" / "images" / "img_000002.png").write_text("hello")
    r = pfp("split", "--config", str(cfg))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "is not an image")


def test_class_missing_from_a_split_is_an_error_unless_allowed(workdir):
    """A class present in no TEST item is refused by default."""
    cfg = _demo(workdir, n=40)
    strict = write_config(workdir / "strict.yaml", demo={"n_images": 40, "imgsz": 64, "seed": 0})
    labels = workdir / "data" / "labels"
    for f in labels.glob("*.txt"):  # relabel every 'scissors' as 'rock'
        f.write_text(f.read_text().replace("\n2 ", "\n0 ").replace("2 ", "0 ", 1) if f.read_text().startswith("2 ")
                     else f.read_text().replace("\n2 ", "\n0 "))
    r = pfp("split", "--config", str(strict))
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "'scissors' is present in no")
    assert pfp("split", "--config", str(cfg)).exit_code == 0


@pytest.mark.parametrize(
    ("env", "needle"),
    [({"PFP_DEVICE": "warp9"}, "PFP_DEVICE"), ({"MLFLOW_TRACKING_URI": "gopher://x"}, "MLFLOW_TRACKING_URI")],
)
def test_bad_env_exits_2_with_variable_name(workdir, monkeypatch, env, needle):
    """A bad environment value exits 2 and names the variable, with --json still printing valid JSON."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = pfp("status", "--json")
    assert r.exit_code == 2
    _stderr_ok(r.stderr, needle)
    payload = json.loads(r.stdout)
    assert payload["ok"] is False and payload["exit_code"] == 2


def test_unknown_profile_and_missing_config(workdir):
    """An unknown profile or a missing --config file is exit 2."""
    r = pfp("split", "--profile", "nope")
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "unknown profile")
    r = pfp("split", "--config", "missing.yaml")
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "config file not found")


def test_steps_in_the_wrong_order_explain_what_to_run(workdir):
    """train before split, register before train: exit 2 saying which command to run."""
    r = pfp("train")
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "run `pfp split` first")


def test_unknown_model_status_and_rollback(workdir, monkeypatch):
    """status of a model that does not exist is empty; rolling it back is exit 2."""
    monkeypatch.setenv("PFP_MODEL_NAME", "no-such-model")
    r = pfp("status", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["result"]["versions"] == []
    r = pfp("rollback")
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "not found")


@pytest.mark.parametrize("value", ["abc", "0", "-3", "models:/other@production", "runs:/x/model"])
def test_non_numeric_versions_are_refused(workdir, value):
    """--to-version takes a positive integer only: no URIs pointing outside the configured registry."""
    r = pfp("rollback", "--to-version", value)
    assert r.exit_code == 2
    _stderr_ok(r.stderr, "positive integer")


def test_traceback_only_with_pfp_debug(workdir):
    """PFP_DEBUG=1 adds the traceback; without it there is none."""
    env = {"PFP_DEVICE": "warp9", "PFP_HOME": str(workdir / ".pfp")}
    base = [sys.executable, "-m", "pfp_mlops", "status"]
    import os

    plain = subprocess.run(base, capture_output=True, text=True, env={**os.environ, **env})
    debug = subprocess.run(base, capture_output=True, text=True, env={**os.environ, **env, "PFP_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
