"""A real `pfp validate` process SIGKILLed between two writes of the lifecycle engine, on the embedded SQLite store:
`pfp status` reports the pending entry, `pfp rollback` does not count it as a production, `pfp repair` finishes
it from the plan the entry carries, and aliases, stage tags and the ledger agree again.

The kill comes from the engine's test hook (PFP_TEST_KILL_AFTER_WRITE=k: SIGKILL itself right after write k), so
it lands exactly between two writes, not "somewhere around" them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from tests.helpers import pfp
from tests.reliability import (
    aliases,
    consistent,
    in_project,
    registry_state,
    sqlite_uri,
    trained_template,
    training_info_for,
)

from pfp_mlops.services.lifecycle import KILL_AFTER_WRITE_ENV

pytestmark = pytest.mark.slow


def test_validate_killed_after_moving_production_is_reported_and_repaired(tmp_path_factory, tmp_path):
    template = trained_template(tmp_path_factory)
    home = tmp_path / "home"
    uri = sqlite_uri(home)
    info = training_info_for(template, uri, home / "training_info.json")
    with in_project(template, home):
        assert pfp("register", "--config", "cfg.yaml", "--training-info", str(info)).exit_code == 0
        assert pfp("promote", "--version", "1", "--config", "cfg.yaml").exit_code == 0
    ledger_before = registry_state(uri)["ledger"]
    # writes of validate's plan: 1 pending entry, 2 production -> v1, 3 staging -> none, 4 tags, 5 complete
    env = {**os.environ, "PFP_HOME": str(home), KILL_AFTER_WRITE_ENV: "2"}
    p = subprocess.run([sys.executable, "-m", "pfp_mlops", "validate", "--config", "cfg.yaml"], cwd=template, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    state = registry_state(uri)
    assert state["aliases"] == {"production": 1, "staging": 1} and state["ledger"] == ledger_before + 1
    assert not consistent(uri)
    with in_project(template, home):
        r = pfp("status", "--json")
        pending = json.loads(r.stdout)["result"]["pending"]
        assert [(e["action"], e["outcome"], e["repair_will"]) for e in pending] == [("validate", "promoted",
                                                                                       "complete")]
        assert "pfp repair" in pfp("status").stdout
        r = pfp("rollback", "--dry-run", "--json")  # the pending promotion is no "previous production"
        assert r.exit_code == 2 and "no previous production" in json.loads(r.stdout)["error"]["message"]
        r = pfp("repair", "--json")
        assert r.exit_code == 0, r.output
        assert [e["resolution"] for e in json.loads(r.stdout)["result"]["pending"]] == ["complete"]
        assert json.loads(pfp("status", "--json").stdout)["result"]["pending"] == []
        history = json.loads(pfp("history", "--json").stdout)["result"]
    assert aliases(uri) == {"production": 1} and consistent(uri)
    assert (history[0]["action"], history[0]["outcome"], history[0]["status"]) == ("validate", "promoted", "complete")
