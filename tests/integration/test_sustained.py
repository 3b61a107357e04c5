"""Sustained use: 50 lifecycle operations in a row against an MLflow server, through the public entry point.

The mix (stated, because `register` and `rollback` each load the model in a fresh process — the runtime check and
the rollback pre-flight — which costs ~5 s of CPU and measured 43–48 s per operation on 2 saturated cores, while a
promote took ~1 s): 3 register, 42 promote, 2 validate (a first deployment, the rejection of an equal
challenger), 2 rollback (to a named version, then to the previous production read from the ledger), 1 regression
watch (`validate --against previous`). Zero errors (every exit code is the expected 0 or 10), a ledger entry per
operation in order (`pfp history`), and at the end the aliases and stage tags agree and `pfp status` sees no drift.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from tests.helpers import pfp
from tests.reliability import consistent, in_project, registry_state, shared_server, trained_template, training_info_for

pytestmark = pytest.mark.slow
MODEL = "sustained-model"


def _ops(info: str) -> list[tuple[list[str], int]]:
    reg = (["register", "--training-info", info], 0)
    ops: list[tuple[list[str], int]] = [reg, reg, reg, (["promote", "--version", "1"], 0), (["validate"], 0)]
    for _ in range(20):  # staging moves back and forth; the version it leaves is archived
        ops += [(["promote", "--version", "2"], 0), (["promote", "--version", "3"], 0)]
    ops += [
        (["validate"], 10),  # v3 equals v1: rejected
        (["rollback", "--to-version", "2"], 0),  # production v1 -> v2 (v1 rolled_back)
        (["validate", "--against", "previous"], 0),  # v2 vs v1 on current data: equal, no regression
        (["rollback"], 0),  # back to the previous production read from the ledger: v1 (v2 rolled_back)
        (["promote", "--version", "2"], 0),  # a rolled-back version may be staged again
    ]
    return ops


def test_fifty_lifecycle_operations_against_the_server(tmp_path_factory, tmp_path):
    template = trained_template(tmp_path_factory)
    server = shared_server(tmp_path_factory)
    home = tmp_path / "home"
    info = training_info_for(template, server.uri, home / "training_info.json")
    ops = _ops(str(info))
    assert len(ops) == 50
    env = {"MLFLOW_TRACKING_URI": server.uri, "PFP_MODEL_NAME": MODEL}
    seconds: dict[str, list[float]] = {}
    t_all = time.monotonic()
    with in_project(template, home, **env):
        for i, (args, code) in enumerate(ops):
            t0 = time.monotonic()
            r = pfp(*args, "--config", "cfg.yaml", "--json")
            seconds.setdefault(args[0] if args[:2] != ["validate", "--against"] else "watch", []).append(
                time.monotonic() - t0)
            assert r.exit_code == code, (i, args, r.exit_code, r.stderr[-2000:])
            assert "Traceback" not in r.stderr
            payload = json.loads(r.stdout)
            assert payload["exit_code"] == code
        total = time.monotonic() - t_all
        history = json.loads(pfp("history", "--limit", "500", "--json").stdout)["result"]
        status = json.loads(pfp("status", "--json").stdout)["result"]
    summary = {k: f"{len(v)} x {sum(v) / len(v):.2f}s" for k, v in seconds.items()}
    sys.stderr.write(f"\n[sustained] 50 operations in {total:.1f}s: {summary}\n")
    # the ledger: one entry per operation, in order
    actions = [e["action"] for e in reversed(history)]
    expected = [a[0] for a, _ in ops]
    assert len(actions) == len(expected), (actions, expected)
    assert actions == expected
    # the end state: production v1, staging v2, v3 rejected; tags follow aliases
    state = registry_state(server.uri, MODEL)
    assert state["aliases"] == {"production": 1, "staging": 2}
    assert {v: t["stage"] for v, t in state["versions"].items()} == {1: "production", 2: "staging", 3: "rejected"}
    assert consistent(server.uri, MODEL)
    assert status["drift"] == []
