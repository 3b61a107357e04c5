"""Lifecycle safety without training: alias compare-and-set under real concurrent processes, drift and repair,
history, alerts to a real HTTP server on loopback. A real SQLite MLflow store; model versions point at an empty
folder (nothing here loads a model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.helpers import client, pfp, pfp_json
from tests.webhook import loopback_webhook

from pfp_mlops.adapters.alerts import send_alert
from pfp_mlops.domain.errors import ConcurrentPromotion
from pfp_mlops.domain.transitions import plan_record
from pfp_mlops.services import lifecycle

MODEL = "pfp-detector"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def registry(workdir: Path, empty_store: Path):
    """A registered model with three versions (v1 production, v2 staging, v3 candidate), tags following aliases."""
    from pfp_mlops.adapters.mlflow_registry import Registry
    from pfp_mlops.settings import Settings

    (workdir / ".pfp").mkdir()
    shutil.copyfile(empty_store, workdir / ".pfp" / "mlflow.db")  # migrated once per module: ~5 s saved per test
    reg = Registry(Settings(_env_file=None))
    src = workdir / "model-src"
    src.mkdir()
    reg.ensure_model(MODEL)
    for _ in range(3):
        reg.client.create_model_version(MODEL, str(src), tags={"stage": "candidate", "runtime_check": "passed"})
    reg.move_alias(MODEL, "production", 1, expected=None)
    reg.set_tags(MODEL, 1, {"stage": "production"})
    reg.move_alias(MODEL, "staging", 2, expected=None)
    reg.set_tags(MODEL, 2, {"stage": "staging"})
    lifecycle.record(_ctx(), plan_record(MODEL, "validate", "promoted", to_version=1))
    return reg


def _ctx():
    from pfp_mlops.services.context import Context
    from pfp_mlops.settings import Settings, load_pipeline_config

    s = Settings(_env_file=None)
    return Context(s, load_pipeline_config(s))


def test_move_alias_is_compare_and_set(registry):
    """A move whose expected holder is stale raises ConcurrentPromotion and leaves the alias as it was."""
    with pytest.raises(ConcurrentPromotion):
        registry.move_alias(MODEL, "production", 3, expected=2)
    assert registry.alias_version(MODEL, "production") == 1
    registry.move_alias(MODEL, "production", 3, expected=1)
    assert registry.alias_version(MODEL, "production") == 3
    assert registry.model_tags(MODEL)["pfp.epoch.production"] == "2"


RACER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pfp_mlops.adapters.mlflow_registry import Registry
    from pfp_mlops.domain.errors import ConcurrentPromotion
    from pfp_mlops.settings import Settings

    barrier, me, target = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    reg = Registry(Settings(_env_file=None))
    real_claim = Registry._claim

    def claim_after_barrier(self, *args):
        # both processes have read the alias and passed the check; now they claim at the same moment
        (barrier / me).touch()
        deadline = time.time() + 60
        while len(list(barrier.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.005)
        return real_claim(self, *args)

    Registry._claim = claim_after_barrier
    try:
        reg.move_alias("pfp-detector", "production", target, expected=1)
        print(json.dumps({"me": me, "won": True}))
    except ConcurrentPromotion as e:
        print(json.dumps({"me": me, "won": False, "message": e.message}))
    """
)


@pytest.mark.slow  # two real processes race on one store (~5 s each): not for the 60 s fast tier
@pytest.mark.parametrize("targets", [(2, 2), (2, 3)], ids=["same-target", "different-targets"])
def test_two_processes_moving_one_alias_exactly_one_wins(registry, workdir, targets):
    """Two processes that both read production=v1 and both passed the check: exactly one move lands.

    Re-reading the alias after setting it could not tell two moves to the same version apart; the epoch claim
    (a unique experiment name) can.
    """
    barrier = workdir / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(barrier), f"p{i}", str(t)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for i, t in enumerate(targets)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    winners = [o for o in outs if o["won"]]
    assert len(winners) == 1, outs
    loser = next(o for o in outs if not o["won"])
    assert "another process" in loser["message"] or "moved" in loser["message"]
    winner_target = targets[int(winners[0]["me"][1])]
    assert registry.alias_version(MODEL, "production") == winner_target
    assert registry.model_tags(MODEL)["pfp.epoch.production"] == "2"


def test_a_stale_claim_is_taken_over(registry, monkeypatch):
    """A claim whose owner died before moving the alias does not block later moves forever."""
    import pfp_mlops.adapters.mlflow_aliases as m

    registry.client.create_experiment(f"{m.CLAIM_PREFIX}{MODEL}:production:2")  # claimed epoch 2, never finished
    with pytest.raises(ConcurrentPromotion):
        registry.move_alias(MODEL, "production", 3, expected=1)
    assert registry.alias_version(MODEL, "production") == 1
    monkeypatch.setattr(m, "CLAIM_STALE_S", 0.0)
    registry.move_alias(MODEL, "production", 3, expected=1)
    assert registry.alias_version(MODEL, "production") == 3
    assert registry.model_tags(MODEL)["pfp.epoch.production"] == "3"


def test_status_reports_drift_and_repair_reconciles_it(registry):
    """A production alias moved by hand: status names the drift, repair fixes the tags and writes the ledger."""
    registry.client.set_registered_model_alias(MODEL, "production", "3")  # by hand, as in the MLflow UI
    code, out = pfp_json("status")
    assert code == 0
    drift = out["result"]["drift"]
    assert any("v3 holds the production alias" in d for d in drift), drift
    assert any("v1 tagged production but holds no production alias" in d for d in drift), drift
    r = pfp("status")
    assert "pfp repair" in r.stdout

    code, out = pfp_json("repair", "--dry-run")
    assert code == 0 and len(out["result"]["changes"]) == 2
    assert client().get_model_version(MODEL, "3").tags["stage"] == "candidate"  # dry run changed nothing

    code, out = pfp_json("repair")
    assert code == 0, out
    assert {(c["version"], c["to"]) for c in out["result"]["changes"]} == {(1, "archived"), (3, "production")}
    tags = {v: client().get_model_version(MODEL, str(v)).tags["stage"] for v in (1, 2, 3)}
    assert tags == {1: "archived", 2: "staging", 3: "production"}
    assert pfp_json("status")[1]["result"]["drift"] == []

    code, out = pfp_json("history", "--limit", "5")
    assert code == 0
    latest = out["result"][0]
    assert latest["action"] == "repair" and latest["outcome"] == "repaired" and latest["to_version"] == "3"
    assert "v1 production -> archived" in latest["changes"]
    code, out = pfp_json("repair")
    assert out["result"]["changes"] == [] and out["result"]["ledger_run_id"] is None  # nothing to do, no entry


def test_history_is_newest_first_and_limited(registry, workdir):
    """`pfp history --limit N` shows the N newest ledger entries; a bad limit exits 2 with one line."""
    ctx = _ctx()
    for v in (1, 2, 3):
        lifecycle.record(ctx, plan_record(MODEL, "promote", "promoted", to_version=v, metrics={"map50": 0.1 * v}))
    code, out = pfp_json("history", "--limit", "2")
    assert code == 0
    assert [e["to_version"] for e in out["result"]] == ["3", "2"]
    assert out["result"][0]["metrics"]["map50"] == pytest.approx(0.3)
    assert {"who", "when", "action", "outcome"} <= set(out["result"][0])
    r = pfp("history")
    assert r.exit_code == 0 and "promote" in r.stdout
    r = pfp("history", "--limit", "0")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "--limit" in r.stderr


@pytest.fixture
def webhook():
    """A real HTTP server on loopback that records JSON POSTs."""
    with loopback_webhook() as rec:
        yield rec.url, rec


def test_alert_reaches_a_webhook_with_retries(webhook, tmp_path):
    """A 503 is retried; the alert arrives with a Slack-compatible `text` and the structured fields."""
    url, hook = webhook
    hook.fail_first = 1
    status = send_alert({"event": "rollback", "model": MODEL, "from_version": 2, "to_version": 1,
                         "summary": "pfp: rolled back"}, alerts_file=tmp_path / "alerts.jsonl", webhook_url=url)
    assert status["webhook"] == "sent"
    assert hook.received[0]["text"] == "pfp: rolled back" and hook.received[0]["to_version"] == 1
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["event"] == "rollback"


def test_a_down_webhook_is_reported_quickly_and_never_raises(tmp_path):
    """Nothing listening: the alert is still written to the file, the failure is reported, nothing raises."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    status = send_alert({"event": "regression", "summary": "x"}, alerts_file=tmp_path / "a.jsonl",
                        webhook_url=f"http://127.0.0.1:{port}/hook")
    assert status["webhook"].startswith("failed")
    assert time.time() - t0 < 5
    assert (tmp_path / "a.jsonl").read_text().count("\n") == 1


def test_rollback_alerts_the_webhook_and_a_down_webhook_does_not_block_it(registry, webhook, monkeypatch, workdir):
    """`pfp rollback` moves the alias, tags, writes the ledger and POSTs the alert; with the webhook down it
    still rolls back (exit 0) and reports the failure. The pre-flight load is stubbed: these versions are empty."""
    from pfp_mlops.adapters import packaging
    from pfp_mlops.services import rollback

    monkeypatch.setattr(packaging, "fresh_process_check", lambda uri, img: {"seconds": 0.0})
    monkeypatch.setattr(rollback, "weights_for_version", lambda ctx, info: None)
    url, hook = webhook
    monkeypatch.setenv("PFP_ALERT_WEBHOOK_URL", url)
    code, out = pfp_json("rollback", "--to-version", "3")
    assert code == 0, out
    assert out["result"]["alert"]["webhook"] == "sent"
    assert hook.received[-1]["event"] == "rollback" and hook.received[-1]["to_version"] == 3
    assert "rolled back from v1 to v3" in hook.received[-1]["text"]
    assert client().get_model_version(MODEL, "1").tags["stage"] == "rolled_back"

    monkeypatch.setenv("PFP_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")  # discard port: nothing listens
    code, out = pfp_json("rollback")  # back to the previous production, from the ledger
    assert code == 0, out
    assert out["result"]["to_version"] == 1 and out["result"]["alert"]["webhook"].startswith("failed")
    assert int(client().get_model_version_by_alias(MODEL, "production").version) == 1
    alerts = [json.loads(ln) for ln in (workdir / ".pfp" / "alerts.jsonl").read_text().splitlines()]
    assert [a["to_version"] for a in alerts] == [3, 1]


def test_rollback_preflight_refuses_a_version_that_failed_the_runtime_check(registry, monkeypatch):
    """A version tagged as failing the runtime check needs --force; without it nothing moves (exit 2)."""
    from pfp_mlops.adapters import packaging
    from pfp_mlops.services import rollback

    monkeypatch.setattr(packaging, "fresh_process_check", lambda uri, img: {"seconds": 0.0})
    monkeypatch.setattr(rollback, "weights_for_version", lambda ctx, info: None)
    registry.set_tags(MODEL, 3, {"runtime_check": "failed"})
    r = pfp("rollback", "--to-version", "3")
    assert r.exit_code == 2 and "runtime check" in r.stderr and "--force" in r.stderr
    assert registry.alias_version(MODEL, "production") == 1
    code, out = pfp_json("rollback", "--to-version", "3", "--force", "--dry-run")
    assert code == 0 and out["result"]["dry_run"] is True
    assert any("forced" in x for x in out["result"]["reasons"])
    assert registry.alias_version(MODEL, "production") == 1
