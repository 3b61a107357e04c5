"""Cached, resumable `pfp run-all`: skip unchanged steps, rerun changed ones and what follows, resume after a failure.

The split is real (it is what the cache protects); train/register/promote/validate are replaced by fakes that
record their calls, so these tests check the pipeline's bookkeeping in seconds. The real services run through the
same code in tests/topology/test_http_topology.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.helpers import pfp, pfp_json, write_config

from pfp_mlops.domain.errors import GateFailed, InfraError


@pytest.fixture
def fakes(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fake train/register/promote/validate that count calls; `fail[step]` makes the next call raise."""
    calls: list[str] = []
    fail: dict[str, BaseException] = {}
    version = {"n": 0}

    def maybe_fail(step: str) -> None:
        calls.append(step)
        if step in fail:
            raise fail.pop(step)

    def train(ctx, **_):
        maybe_fail("train")
        runs = ctx.cfg.paths.runs_dir
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "best.pt").write_bytes(b"weights")
        run_id = uuid.uuid4().hex
        (runs / "training_info.json").write_text(json.dumps({"run_id": run_id, "weights": str(runs / "best.pt")}))
        return SimpleNamespace(run_id=run_id, valid_metrics={"map50": 0.5}, epochs=1)

    def register(ctx, **_):
        maybe_fail("register")
        version["n"] += 1
        return SimpleNamespace(version=version["n"], evaluation=SimpleNamespace(map50=0.5))

    def promote(ctx, **_):
        maybe_fail("promote")
        return SimpleNamespace(version=version["n"], alias="staging")

    def validate(ctx, **_):
        maybe_fail("validate")
        return SimpleNamespace(action="promoted", production=version["n"], decision=SimpleNamespace(reasons=["ok"]))

    monkeypatch.setattr("pfp_mlops.services.train.run_train", train)
    monkeypatch.setattr("pfp_mlops.services.register.run_register", register)
    monkeypatch.setattr("pfp_mlops.services.promote.run_promote", promote)
    monkeypatch.setattr("pfp_mlops.services.validate.run_validate", validate)
    cfg = write_config(workdir / "tiny.yaml")
    monkeypatch.setenv("PFP_CONFIG", str(cfg))
    return {"calls": calls, "fail": fail, "cfg": cfg}


def run_all(*args: str) -> tuple[int, dict[str, str]]:
    code, out = pfp_json("run-all", "--demo", *args)
    return code, {s["step"]: s["status"] for s in out["result"]["steps"]} if "result" in out else out


ALL_OK = dict.fromkeys(("split", "train", "register", "promote", "validate"), "ok")
ALL_CACHED = dict.fromkeys(ALL_OK, "cached")


def test_second_run_skips_every_step(fakes):
    """It runs every step once; a second run-all with nothing changed skips all five, saying so, and exits 0."""
    assert run_all() == (0, ALL_OK)
    assert fakes["calls"] == ["train", "register", "promote", "validate"]
    r = pfp("run-all", "--demo")
    assert r.exit_code == 0, r.output
    for step in ALL_OK:
        assert f"↷ {step}: skipped, inputs unchanged" in r.output
    assert fakes["calls"] == ["train", "register", "promote", "validate"]
    state = json.loads((Path(os.environ["PFP_HOME"]) / "pipeline_state.json").read_text())
    assert set(state["steps"]) == set(ALL_OK) and state["version"] == 1


def test_changed_config_section_reruns_that_step_and_downstream(fakes):
    """A changed register gate reruns register; the new version it produces reruns promote and validate."""
    run_all()
    write_config(fakes["cfg"], gates__register={"min_map50": 0.01})
    assert run_all() == (0, {"split": "cached", "train": "cached", "register": "ok", "promote": "ok",
                             "validate": "ok"})
    assert fakes["calls"][4:] == ["register", "promote", "validate"]


def test_changed_data_reruns_everything_but_a_touch_only_resplits(fakes, workdir):
    """New label content changes the split fingerprint (all rerun); a touched file re-splits to the same split."""
    run_all()
    label = sorted((workdir / "data" / "labels").rglob("*.txt"))[0]
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    assert run_all() == (0, {**ALL_CACHED, "split": "ok"})
    assert fakes["calls"] == ["train", "register", "promote", "validate"]
    first = label.read_text().splitlines()[0].split()
    first[1] = f"{min(float(first[1]) + 0.01, 0.99):.6f}"
    label.write_text(" ".join(first) + "\n" + "\n".join(label.read_text().splitlines()[1:]))
    assert run_all() == (0, ALL_OK)
    assert fakes["calls"][4:] == ["train", "register", "promote", "validate"]


def test_failure_resumes_at_the_failed_step(fakes):
    """An unreachable registry at register exits 3; the next run-all skips split and train and resumes there."""
    fakes["fail"]["register"] = InfraError("MLflow unreachable at http://127.0.0.1:9")
    code, steps = run_all()
    assert code == 3
    assert steps == {"split": "ok", "train": "ok", "register": "failed", "promote": "skipped", "validate": "skipped"}
    assert run_all() == (0, {"split": "cached", "train": "cached", "register": "ok", "promote": "ok", "validate": "ok"})
    assert fakes["calls"] == ["train", "register", "register", "promote", "validate"]


def test_gate_decision_is_cached_with_its_exit_code(fakes):
    """A rejected challenger (exit 10) is a decision: unchanged inputs give exit 10 again without re-evaluating."""
    fakes["fail"]["validate"] = GateFailed("challenger rejected")
    assert run_all() == (10, {**ALL_OK, "validate": "gate"})
    assert run_all() == (10, ALL_CACHED)
    assert fakes["calls"].count("validate") == 1
    assert run_all("--from", "validate") == (0, {**{s: "skipped" for s in ALL_OK}, "validate": "ok"})


def test_force_from_and_until(fakes):
    """--force reruns all; --from STEP reruns STEP and after; --until STEP stops after it; unknown steps exit 2."""
    run_all()
    assert run_all("--force") == (0, ALL_OK)
    assert run_all("--from", "promote") == (0, {"split": "skipped", "train": "skipped", "register": "skipped",
                                                "promote": "ok", "validate": "ok"})
    assert run_all("--until", "train") == (0, {"split": "cached", "train": "cached", "register": "skipped",
                                               "promote": "skipped", "validate": "skipped"})
    assert fakes["calls"] == ["train", "register", "promote", "validate"] * 2 + ["promote", "validate"]
    assert run_all("--from", "split", "--until", "split") == (0, {"split": "ok", **{s: "skipped" for s in
                                                                                   list(ALL_OK)[1:]}})
    code, out = pfp_json("run-all", "--from", "deploy")
    assert code == 2 and "unknown step 'deploy'" in out["error"]["message"]
    code, out = pfp_json("run-all", "--from", "validate", "--until", "split")
    assert code == 2


def test_a_second_run_all_waits_then_refuses_with_exit_2(fakes):
    """While another run-all holds the project lock, a second one waits --wait seconds, then exits 2 naming it."""
    home = Path(os.environ["PFP_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "run-all.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 since 2026-01-01T00:00:00Z")
        held.flush()
        code, out = pfp_json("run-all", "--demo", "--wait", "0.3")
    assert code == 2
    assert "another `pfp run-all` is running in this project (pid 4242" in out["error"]["message"]
    assert fakes["calls"] == []
    assert run_all() == (0, ALL_OK)  # the lock is free again


def test_noop_run_all_imports_no_torch_or_ultralytics(fakes, workdir):
    """A no-op run-all in a fresh process imports neither torch, ultralytics nor mlflow, and skips every step."""
    run_all()
    probe = (
        "import sys, json\nfrom pfp_mlops.cli.app import app\n"
        "try:\n    app(['run-all', '--demo', '--json'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(json.dumps({'code': code, 'modules': sorted({m.split('.')[0] for m in sys.modules})}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    result = json.loads("\n".join(lines[:-1]))
    assert report["code"] == 0, proc.stderr[-2000:]
    assert {s["status"] for s in result["result"]["steps"]} == {"cached"}
    assert not {"torch", "ultralytics", "mlflow"} & set(report["modules"])
