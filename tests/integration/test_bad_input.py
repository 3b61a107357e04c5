"""Hostile input, one case per row: the documented exit code, exactly one `pfp: error:` line on stderr naming the
problem and where (file, row/line, variable, option), no traceback, and nothing changed on disk or in the
registry (hashes of data/, dataset/, runs/ and the registry state through MlflowClient, before and after).

Every case runs in its own copy of one small project: a synthetic dataset already split, a training_info.json and
a registry holding v1 (production), v2 (rejected) and v3 (archived).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.helpers import pfp
from tests.reliability import MODEL, file_hashes, in_project, registry_state, sqlite_uri, write_cfg


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input-template")
    cfg = write_cfg(root / "cfg.yaml", demo={"n_images": 24, "imgsz": 64, "seed": 0})
    with in_project(root):
        assert pfp("demo-data", "--config", str(cfg)).exit_code == 0
        assert pfp("split", "--config", str(cfg)).exit_code == 0
    runs = root / "runs"
    runs.mkdir()
    (runs / "best.pt").write_bytes(b"stand-in weights: never loaded by these cases")
    manifest = json.loads((root / "dataset" / "split_manifest.json").read_text())
    (runs / "training_info.json").write_text(json.dumps(
        {"run_id": "0" * 32, "weights": "runs/best.pt", "split_fingerprint": manifest["fingerprint"]}))
    from mlflow import MlflowClient

    uri = sqlite_uri(root / ".pfp")
    (root / ".pfp").mkdir(exist_ok=True)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    c.create_registered_model(MODEL)
    for stage in ("production", "rejected", "archived"):
        c.create_model_version(MODEL, f"file://{root}/.pfp/artifacts/{stage}",
                               tags={"stage": stage, "runtime_check": "passed",
                                     "split_fingerprint": manifest["fingerprint"]})
    c.set_registered_model_alias(MODEL, "production", "1")
    return root


@dataclass
class Case:
    args: list[str]
    code: int
    needles: list[str]
    env: dict[str, str] = field(default_factory=dict)
    mutate: Callable[[Path], None] | None = None
    subprocess: bool = False  # usage errors are printed by the entry point (`main`), outside Typer's test runner


def csv(text: str | bytes) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        p = root / "data" / "dataset_info.csv"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


def label(text: str, name: str = "img_000003.txt") -> Callable[[Path], None]:
    return lambda root: (root / "data" / "labels" / name).write_text(text)


def config(text: str) -> Callable[[Path], None]:
    return lambda root: (root / "bad.yaml").write_text(text)


def rm(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def write(rel: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_text(text)


def only_rock(root: Path) -> None:
    for f in (root / "data" / "labels").glob("*.txt"):
        f.write_text("".join("0" + ln[1:] + "\n" for ln in f.read_text().splitlines() if ln.strip()))


SPLIT = ["split", "--config", "cfg.yaml"]
STRICT = "split:\n  allow_missing_classes: false\ndemo:\n  imgsz: 64\n"
CSV_FILE = "dataset_info.csv"

CASES: dict[str, Case] = {
    # --- dataset_info.csv: the message names the file and the row (line) ---
    "csv missing": Case(SPLIT, 2, [CSV_FILE, "not found"], mutate=rm("data/dataset_info.csv")),
    "csv empty": Case(SPLIT, 2, [CSV_FILE, "empty"], mutate=csv("")),
    "csv header only": Case(SPLIT, 2, [CSV_FILE, "no rows"], mutate=csv("image_path,label_path\n")),
    "csv wrong delimiter": Case(SPLIT, 2, [CSV_FILE, "delimiter"],
                                mutate=csv("image_path;label_path\nimages/img_000000.png;labels/img_000000.txt\n")),
    "csv missing column": Case(SPLIT, 2, [CSV_FILE, "missing required column", "image_path"],
                               mutate=csv("path,label\nimages/img_000000.png,x\n")),
    "csv duplicate rows": Case(SPLIT, 2, [f"{CSV_FILE}:3", "duplicate"],
                               mutate=csv("image_path\nimages/img_000000.png\nimages/img_000000.png\n")),
    "csv non-utf8": Case(SPLIT, 2, [f"{CSV_FILE}:2", "not valid UTF-8"],
                         mutate=csv(b"image_path\nimages/caf\xe9.png\n")),
    "csv path escapes root": Case(SPLIT, 2, [f"{CSV_FILE}:2", "escapes the data root"],
                                  mutate=csv("image_path\n../images/x.png\n")),
    "csv absolute path": Case(SPLIT, 2, [f"{CSV_FILE}:2", "absolute"],
                              mutate=csv("image_path\n/etc/images/passwd.png\n")),
    "csv image missing": Case(SPLIT, 2, [f"{CSV_FILE}:2", "image file not found", "images/nope.png"],
                              mutate=csv("image_path\nimages/nope.png\n")),
    "csv too many fields": Case(SPLIT, 2, [f"{CSV_FILE}:2"],
                                mutate=csv("image_path,label_path\nimages/img_000000.png,labels/img_000000.txt,x\n")),
    "image not an image": Case(SPLIT, 2, ["images/img_000002.png", "is not an image"],
                               mutate=write("data/images/img_000002.png", "hello")),
    "label missing": Case(SPLIT, 2, ["label file not found: labels/img_000001.txt"],
                          mutate=rm("data/labels/img_000001.txt")),
    "label field count": Case(SPLIT, 2, ["img_000003.txt:1", "expected 5 fields"], mutate=label("0 0.5 0.5 0.2\n")),
    "label class id": Case(SPLIT, 2, ["img_000003.txt:1", "class id 7 out of range"],
                           mutate=label("7 0.5 0.5 0.2 0.2\n")),
    "label not a number": Case(SPLIT, 2, ["img_000003.txt:2"], mutate=label("0 0.5 0.5 0.2 0.2\n0 x 0.5 0.2 0.2\n")),
    "label coordinates": Case(SPLIT, 2, ["img_000003.txt:1", "outside [0, 1]"], mutate=label("0 1.5 0.5 0.2 0.2\n")),
    "label zero-size box": Case(SPLIT, 2, ["img_000003.txt:1", "zero-size box"], mutate=label("0 0.5 0.5 0.0 0.2\n")),
    "class in no split": Case(["split", "--config", "bad.yaml"], 2, ["'paper' is present in no"],
                              mutate=lambda r: (only_rock(r), config(STRICT)(r))),
    # --- the YAML config: file, line or key ---
    "config malformed": Case(["split", "--config", "bad.yaml"], 2, ["bad.yaml:3", "expected"],
                             mutate=config("split:\n  seed: [1\n")),
    "config not a mapping": Case(["split", "--config", "bad.yaml"], 2, ["bad.yaml", "mapping"],
                                 mutate=config("- a\n- b\n")),
    "config unknown section": Case(["status", "--config", "bad.yaml"], 2, ["bad.yaml", "trian", "unknown key"],
                                   mutate=config("trian:\n  epochs: 3\n")),
    "config unknown key": Case(["split", "--config", "bad.yaml"], 2, ["bad.yaml", "train.epoch", "unknown key"],
                               mutate=config("train:\n  epoch: 3\n")),
    "config wrong type": Case(["split", "--config", "bad.yaml"], 2, ["bad.yaml", "train.epochs"],
                              mutate=config("train:\n  epochs: ten\n")),
    "config threshold out of range": Case(["promote", "--config", "bad.yaml"], 2,
                                          ["bad.yaml", "gates.promote.min_map50"],
                                          mutate=config("gates:\n  promote:\n    min_map50: 1.5\n")),
    "config gate mode": Case(["validate", "--config", "bad.yaml"], 2, ["bad.yaml", "gates.validate.mode"],
                             mutate=config("gates:\n  validate:\n    mode: vibes\n")),
    "config ratios": Case(["split", "--config", "bad.yaml"], 2, ["bad.yaml", "split.ratios", "sum to 1"],
                          mutate=config("split:\n  ratios: {train: 0.5, valid: 0.2, test: 0.2}\n")),
    "config file missing": Case(["split", "--config", "nope.yaml"], 2, ["config file not found: nope.yaml"]),
    "unknown profile": Case(["split", "--profile", "nope"], 2, ["unknown profile 'nope'"]),
    "profile escapes": Case(["split"], 2, ["PFP_PROFILE", "invalid profile name"], env={"PFP_PROFILE": "../etc"}),
    # --- environment: the variable's name ---
    "env tracking uri": Case(["status"], 2, ["MLFLOW_TRACKING_URI", "gopher://x"],
                             env={"MLFLOW_TRACKING_URI": "gopher://x"}),
    "env device": Case(["status"], 2, ["PFP_DEVICE", "warp9"], env={"PFP_DEVICE": "warp9"}),
    "env log level": Case(["status"], 2, ["PFP_LOG_LEVEL"], env={"PFP_LOG_LEVEL": "LOUD"}),
    "env log format": Case(["status"], 2, ["PFP_LOG_FORMAT"], env={"PFP_LOG_FORMAT": "xml"}),
    "env model name": Case(["status"], 2, ["PFP_MODEL_NAME"], env={"PFP_MODEL_NAME": "no such/model"}),
    "env webhook": Case(["status"], 2, ["PFP_ALERT_WEBHOOK_URL"], env={"PFP_ALERT_WEBHOOK_URL": "ftp://x"}),
    "env s3 endpoint": Case(["status"], 2, ["MLFLOW_S3_ENDPOINT_URL"], env={"MLFLOW_S3_ENDPOINT_URL": "not a url"}),
    "env debug flag": Case(["status"], 2, ["PFP_DEBUG"], env={"PFP_DEBUG": "maybe"}),
    "env home is a file": Case(["status"], 2, ["PFP_HOME"], env={"PFP_HOME": "cfg.yaml"}),
    "env production runtime": Case(["register", "--config", "cfg.yaml"], 2, ["PFP_PRODUCTION_RUNTIME", "torch>>>2"],
                                   env={"PFP_PRODUCTION_RUNTIME": "torch>>>2"}),
    # --- training outputs given to register ---
    "training info not json": Case(["register", "--config", "cfg.yaml"], 2, ["training_info.json", "not valid JSON"],
                                   mutate=write("runs/training_info.json", "{")),
    "training info incomplete": Case(["register", "--config", "cfg.yaml"], 2, ["training_info.json", "weights"],
                                     mutate=write("runs/training_info.json", '{"run_id": "x"}')),
    "weights missing": Case(["register", "--config", "cfg.yaml"], 2, ["best.pt", "not found"],
                            mutate=rm("runs/best.pt")),
    # --- model name and version references ---
    "promote unknown model": Case(["promote", "--config", "cfg.yaml"], 2, ["no-such-model"],
                                  env={"PFP_MODEL_NAME": "no-such-model"}),
    "validate unknown model": Case(["validate", "--config", "cfg.yaml"], 2, ["no-such-model", "not found"],
                                   env={"PFP_MODEL_NAME": "no-such-model"}),
    "rollback unknown model": Case(["rollback", "--config", "cfg.yaml"], 2, ["no-such-model", "not found"],
                                   env={"PFP_MODEL_NAME": "no-such-model"}),
    "repair unknown model": Case(["repair", "--config", "cfg.yaml"], 2, ["no-such-model", "not found"],
                                 env={"PFP_MODEL_NAME": "no-such-model"}),
    "promote unknown version": Case(["promote", "--version", "99", "--config", "cfg.yaml"], 2, ["99"]),
    "promote non-numeric": Case(["promote", "--version", "abc", "--config", "cfg.yaml"], 2,
                                ["--version", "positive integer"]),
    "promote model uri": Case(["promote", "--version", "models:/other@production", "--config", "cfg.yaml"], 2,
                              ["--version", "positive integer"]),
    "promote rejected": Case(["promote", "--version", "2", "--config", "cfg.yaml"], 10, ["v2", "rejected"]),
    "rollback unknown version": Case(["rollback", "--to-version", "99", "--config", "cfg.yaml"], 2,
                                     ["99", "not found"]),
    "rollback zero": Case(["rollback", "--to-version", "0", "--config", "cfg.yaml"], 2,
                          ["--to-version", "positive integer"]),
    "rollback negative": Case(["rollback", "--to-version", "-3", "--config", "cfg.yaml"], 2,
                              ["--to-version", "positive integer"]),
    "rollback non-numeric": Case(["rollback", "--to-version", "abc", "--config", "cfg.yaml"], 2,
                                 ["--to-version", "positive integer"]),
    "rollback runs uri": Case(["rollback", "--to-version", "runs:/abc/model", "--config", "cfg.yaml"], 2,
                              ["--to-version", "positive integer"]),
    "rollback file uri": Case(["rollback", "--to-version", "file:///tmp/evil.pt", "--config", "cfg.yaml"], 2,
                              ["--to-version", "positive integer"]),
    "rollback rejected": Case(["rollback", "--to-version", "2", "--config", "cfg.yaml"], 2,
                              ["version 2", "rejected", "--force"]),
    "rollback to production": Case(["rollback", "--to-version", "1", "--config", "cfg.yaml"], 2,
                                   ["already in production"]),
    "rollback no previous": Case(["rollback", "--config", "cfg.yaml"], 2, ["no previous production"]),
    # --- options ---
    "validate against": Case(["validate", "--against", "yesterday", "--config", "cfg.yaml"], 2, ["--against"]),
    "validate tolerance": Case(["validate", "--against", "previous", "--tolerance", "5", "--config", "cfg.yaml"], 2,
                               ["--tolerance"]),
    "register env manager": Case(["register", "--env-manager", "pip", "--config", "cfg.yaml"], 2, ["--env-manager"]),
    "history limit": Case(["history", "--limit", "0", "--config", "cfg.yaml"], 2, ["--limit"]),
    "run-all unknown step": Case(["run-all", "--from", "deploy", "--config", "cfg.yaml"], 2, ["deploy"]),
    "usage: not a number": Case(["history", "--limit", "many"], 2, ["history", "--limit"], subprocess=True),
    "usage: unknown option": Case(["status", "--colour"], 2, ["--colour"], subprocess=True),
    "usage: out of range": Case(["demo-data", "--n", "3"], 2, ["--n"], subprocess=True),
    "usage: unknown command": Case(["deploy"], 2, ["deploy"], subprocess=True),
}


JSON_CASES = {"csv missing", "csv non-utf8", "label class id", "config unknown key", "config malformed", "env device",
              "env tracking uri", "env production runtime", "training info incomplete", "promote unknown version",
              "promote rejected", "validate unknown model", "rollback rejected", "rollback runs uri",
              "repair unknown model", "history limit", "run-all unknown step", "validate tolerance",
              *(n for n in CASES if n.startswith("usage"))}
COMMANDS = ["demo-data", "split", "train", "register", "promote", "validate", "rollback", "run-all", "status",
            "history", "repair", "doctor", "monitor run", "monitor watch", "monitor status", "monitor label-template"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_its_error_as_json(tmp_path: Path, command: str) -> None:
    """With --json, a failing command still prints one valid JSON object on stdout (and one line on stderr)."""
    with in_project(tmp_path, PFP_DEVICE="warp9"):
        r = pfp(*command.split(), "--json")
    assert r.exit_code == 2, r.output
    payload = json.loads(r.stdout)
    assert payload == {**payload, "ok": False, "command": command, "exit_code": 2}
    assert "PFP_DEVICE" in payload["error"]["message"]
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [f"pfp: error: {payload['error']['message']}"]


def _invoke(root: Path, case: Case, json_out: bool) -> tuple[int, str, str]:
    args = [*case.args, *(["--json"] if json_out else [])]
    if case.subprocess:
        env = {**os.environ, "PFP_HOME": str(root / ".pfp"), **case.env}
        p = subprocess.run([sys.executable, "-m", "pfp_mlops", *args], cwd=root, env=env, capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr
    with in_project(root, **case.env):
        r = pfp(*args)
    return r.exit_code, r.stdout, r.stderr


def _snapshot(root: Path) -> dict:
    return {"files": file_hashes(root / "data", root / "dataset", root / "runs"),
            "registry": registry_state(sqlite_uri(root / ".pfp"))}


@pytest.mark.parametrize(("name", "json_out"), [
    *((n, False) for n in CASES),
    *((n, True) for n in CASES if n in JSON_CASES),  # --json: one row per command and kind of error
], ids=lambda v: ("json" if v else "text") if isinstance(v, bool) else v)
def test_bad_input(template: Path, tmp_path: Path, name: str, json_out: bool) -> None:
    """It exits with the documented code and one line naming the problem and where; nothing changes."""
    case = CASES[name]
    root = tmp_path / "p"
    shutil.copytree(template, root, symlinks=True)
    if case.mutate:
        case.mutate(root)
    before = _snapshot(root)
    code, stdout, stderr = _invoke(root, case, json_out)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == case.code, (code, stderr, stdout)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pfp: error: "), stderr
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in stderr + stdout
    if json_out:
        payload = json.loads(stdout)
        assert payload["ok"] is False and payload["exit_code"] == case.code
        assert payload["error"]["message"] in lines[0]
    else:
        assert "Traceback" not in stdout
    assert _snapshot(root) == before
