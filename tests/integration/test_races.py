"""Races between processes: two `pfp validate` on one model, two `pfp run-all` in one project.

Two validate workers (long-lived processes, so each round costs no import) run `pfp validate --json` at the same
instant, round after round. Each round starts from the same state: v1 holds `staging`, nothing holds `production`,
so both decide "first deployment: promote". The evaluation is slowed by 1 s in both (a harness patch), so both
read the aliases before either moves one: only the alias compare-and-set (the epoch claim in
adapters/mlflow_registry.py) can keep them from both promoting. Exactly one must promote; the other must exit 12
and change nothing (no tag, no alias, no ledger entry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.helpers import pfp
from tests.reliability import (
    MODEL,
    Pfp,
    error_lines,
    file_hashes,
    in_project,
    registry_state,
    shared_server,
    sqlite_uri,
    trained_template,
    training_info_for,
    write_cfg,
)

pytestmark = pytest.mark.slow
ROUNDS = 5

WORKER = r'''
import contextlib, io, os, sys, time
import pfp_mlops.services.validate as v
orig = v.evaluate
def slow(*a, **k):
    time.sleep(1.0)  # both workers read the aliases before either can move one
    return orig(*a, **k)
v.evaluate = slow
from pfp_mlops.cli.app import app
ctl = sys.argv[1]
i = 0
while not os.path.exists(os.path.join(ctl, "stop")):
    go = os.path.join(ctl, f"go-{i}")
    if not os.path.exists(go):
        time.sleep(0.01)
        continue
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = app(["validate", "--json", "--config", sys.argv[2]], standalone_mode=False)
        except SystemExit as e:
            code = e.code
    me = os.environ["WORKER"]
    with open(os.path.join(ctl, f"out-{i}-{me}.json"), "w") as fh:
        fh.write(out.getvalue())
    with open(os.path.join(ctl, f"err-{i}-{me}.txt"), "w") as fh:
        fh.write(err.getvalue())
    with open(os.path.join(ctl, f"rc-{i}-{me}.tmp"), "w") as fh:
        fh.write(str(code))
    os.rename(os.path.join(ctl, f"rc-{i}-{me}.tmp"), os.path.join(ctl, f"rc-{i}-{me}"))
    i += 1
'''


def _registered(template: Path, home: Path, uri: str, env: dict[str, str]) -> None:
    """Register the template's weights as v1 in the store at `uri` (in-process)."""
    info = training_info_for(template, uri, home / "training_info.json")
    with in_project(template, home, **env):
        r = pfp("register", "--config", "cfg.yaml", "--training-info", str(info))
    assert r.exit_code == 0, r.output


def _reset(uri: str, model: str) -> None:
    """v1 in staging, no production: both workers will decide to promote v1."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    rm = c.get_registered_model(model)
    if "production" in (rm.aliases or {}):
        c.delete_registered_model_alias(model, "production")
    c.set_registered_model_alias(model, "staging", "1")
    c.set_model_version_tag(model, "1", "stage", "staging")


def _race(template: Path, tmp: Path, uri: str, env: dict[str, str], model: str) -> list[dict]:
    ctl = tmp / "ctl"
    ctl.mkdir()
    script = tmp / "worker.py"
    script.write_text(WORKER)
    base = {**os.environ, **env}
    workers = [subprocess.Popen([sys.executable, str(script), str(ctl), "cfg.yaml"], cwd=template,
                                env={**base, "WORKER": w}, start_new_session=True) for w in ("a", "b")]
    rounds = []
    try:
        for i in range(ROUNDS):
            _reset(uri, model)
            before = registry_state(uri, model)
            (ctl / f"go-{i}").touch()
            deadline = time.monotonic() + 180
            while not all((ctl / f"rc-{i}-{w}").exists() for w in "ab"):
                assert time.monotonic() < deadline, f"round {i}: workers did not finish"
                assert all(w.poll() is None for w in workers), "a worker died"
                time.sleep(0.05)
            codes = {w: int((ctl / f"rc-{i}-{w}").read_text()) for w in "ab"}
            outs = {w: json.loads((ctl / f"out-{i}-{w}.json").read_text()) for w in "ab"}
            errs = {w: (ctl / f"err-{i}-{w}.txt").read_text() for w in "ab"}
            rounds.append({"codes": codes, "outs": outs, "errs": errs, "before": before,
                           "after": registry_state(uri, model)})
    finally:
        (ctl / "stop").touch()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
    return rounds


def _check(rounds: list[dict]) -> None:
    for i, r in enumerate(rounds):
        codes, outs, errs, before, after = r["codes"], r["outs"], r["errs"], r["before"], r["after"]
        assert sorted(codes.values()) == [0, 12], (i, codes, errs)
        winner = next(w for w, c in codes.items() if c == 0)
        loser = next(w for w, c in codes.items() if c == 12)
        assert outs[winner]["result"]["action"] == "promoted"
        assert outs[loser]["ok"] is False and outs[loser]["exit_code"] == 12
        assert len(error_lines(errs[loser])) == 1 and "nothing changed" in error_lines(errs[loser])[0]
        assert "Traceback" not in errs[loser]
        # exactly the winner's changes: production -> v1, staging gone, v1 tagged production, one ledger entry
        assert after["aliases"] == {"production": 1}, (i, after["aliases"])
        assert after["versions"][1]["stage"] == "production"
        assert after["ledger"] == before["ledger"] + 1, (i, before["ledger"], after["ledger"])


def test_two_validates_on_sqlite_exactly_one_promotes(tmp_path_factory, tmp_path):
    """SQLite store, 5 rounds: one promotion per round, the other process exits 12 and changes nothing."""
    template = trained_template(tmp_path_factory)
    home = tmp_path / "home"
    env = {"PFP_HOME": str(home)}
    _registered(template, home, sqlite_uri(home), env)
    _check(_race(template, tmp_path, sqlite_uri(home), env, MODEL))


def test_two_validates_against_the_server_exactly_one_promotes(tmp_path_factory, tmp_path):
    """An MLflow server, 5 rounds (a model of its own, so other tests on the server are untouched): the same
    guarantee over REST."""
    template = trained_template(tmp_path_factory)
    server = shared_server(tmp_path_factory)
    home = tmp_path / "home"
    model = f"race-{os.getpid()}"
    env = {"MLFLOW_TRACKING_URI": server.uri, "PFP_HOME": str(home), "PFP_MODEL_NAME": model}
    _registered(template, home, server.uri, env)
    _check(_race(template, tmp_path, server.uri, env, model))


def test_two_run_alls_in_one_project(tmp_path):
    """The second `run-all` refuses (exit 2, names the holder) or waits; the split files come out whole."""
    root = tmp_path / "p"
    root.mkdir()
    cfg = write_cfg(root / "cfg.yaml", demo={"n_images": 24, "imgsz": 64, "seed": 0})
    with in_project(root):
        assert pfp("demo-data", "--config", str(cfg)).exit_code == 0
    env = {**os.environ, "PFP_HOME": str(root / ".pfp"),
           "PFP_HARNESS_PAUSE": "pfp_mlops.services.split:run_split:1:15"}  # room for a slow start
    args = ["run-all", "--until", "split", "--config", "cfg.yaml"]
    first = Pfp.start(tmp_path, [*args, "--force"], env, root)
    first.wait_mark("run_split")  # the first one holds the lock and is inside the split step
    quiet = {k: v for k, v in env.items() if k != "PFP_HARNESS_PAUSE"}
    refused = subprocess.run([sys.executable, "-m", "pfp_mlops", *args, "--force", "--wait", "0", "--json"], cwd=root,
                             env=quiet, capture_output=True, text=True, timeout=120)
    waiter = Pfp.start(tmp_path, [*args, "--force", "--wait", "60"], quiet, root)
    code, _, err, _ = first.finish()
    assert code == 0, err
    assert refused.returncode == 2, refused.stderr
    lines = error_lines(refused.stderr)
    assert len(lines) == 1 and "another `pfp run-all` is running in this project" in lines[0] and "pid" in lines[0]
    assert json.loads(refused.stdout)["exit_code"] == 2
    def split_state() -> tuple[dict, dict]:
        """The list files and data.yaml byte for byte; the manifest without `moved` (relative to the one before)."""
        files = {k: v for k, v in file_hashes(root / "dataset").items() if not k.endswith("split_manifest.json")}
        manifest = json.loads((root / "dataset" / "split_manifest.json").read_text())
        manifest.pop("moved", None)
        return files, manifest

    after_first = split_state()
    code, _, err, _ = waiter.finish()
    assert code == 0, err
    assert split_state() == after_first  # the same split, whole, written once more
    assert len((root / "dataset" / "test.txt").read_text().split()) == json.loads(
        (root / "dataset" / "split_manifest.json").read_text())["counts"]["test"]


def _second_version(uri: str, model: str) -> None:
    """v2: the same artifacts and tags as v1 (its cached evaluation included), without a second registration."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = c.get_model_version(model, "1")
    c.create_model_version(model, v1.source, run_id=v1.run_id, tags={**v1.tags, "stage": "candidate"})


def test_validate_loses_to_a_promote_that_moved_staging_after_its_decision(tmp_path_factory, tmp_path):
    """`pfp validate` decides to promote v1 (first deployment), then pauses before its first write; `pfp promote`
    moves staging to v2 meanwhile. validate must exit 12 and write nothing: the registry is exactly what promote
    left (the issue's defect: production moved, exit 12 saying nothing changed, no tags, no ledger entry)."""
    template = trained_template(tmp_path_factory)
    home = tmp_path / "home"
    uri = sqlite_uri(home)
    env = {"PFP_HOME": str(home)}
    _registered(template, home, uri, env)
    _second_version(uri, MODEL)
    with in_project(template, home):
        assert pfp("promote", "--version", "1", "--config", "cfg.yaml").exit_code == 0
    spawn_env = {**os.environ, **env, "PFP_HARNESS_PAUSE": "pfp_mlops.services.lifecycle:apply:1:8"}
    p = Pfp.start(tmp_path, ["validate", "--config", "cfg.yaml", "--json"], spawn_env, template)
    p.wait_mark("apply")  # decided: promote v1 to production; not a write yet
    with in_project(template, home):
        r = pfp("promote", "--version", "2", "--config", "cfg.yaml")
    assert r.exit_code == 0, r.output
    after_promote = registry_state(uri)
    code, out, err, _ = p.finish()
    assert code == 12, err[-2000:]
    lines = error_lines(err)
    assert len(lines) == 1 and "nothing changed" in lines[0] and "Traceback" not in err
    assert json.loads(out)["exit_code"] == 12
    assert registry_state(uri) == after_promote
    assert after_promote["aliases"] == {"staging": 2}
    assert {v: t["stage"] for v, t in after_promote["versions"].items()} == {1: "archived", 2: "staging"}
