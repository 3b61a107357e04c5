"""The shared study's budget (domain/study_budget.py) and the `train.search.parallel` settings: pure, fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pfp_mlops.domain import study_budget as sb


@dataclass
class T:
    number: int
    state: str
    value: float | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    retried_from: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def test_a_stale_trial_replaced_by_its_rerun_does_not_count_twice():
    trials = [T(0, "COMPLETE", 0.5), T(1, "FAIL"), T(2, "COMPLETE", 0.6), T(3, "WAITING", retried_from=(1,))]
    assert sb.finished(trials) == 2  # #1 is replaced by #3, which is not finished yet
    assert sb.next_action(trials, 3, deadline_passed=False, wait_for_others=True) == "run"  # pops the re-run
    trials[3] = T(3, "COMPLETE", 0.4, retried_from=(1,))
    assert sb.finished(trials) == 3
    assert sb.next_action(trials, 3, deadline_passed=False, wait_for_others=True) == "done"


def test_a_crash_counts_an_interrupt_does_not():
    trials = [T(0, "FAIL"), T(1, "FAIL", user_attrs={"interrupted": True}), T(2, "PRUNED")]
    assert sb.finished(trials) == 2


def test_a_full_budget_waits_for_others_then_stops():
    trials = [T(0, "COMPLETE", 0.5), T(1, "RUNNING")]
    assert sb.next_action(trials, 2, deadline_passed=False, wait_for_others=True) == "wait"
    assert sb.next_action(trials, 2, deadline_passed=False, wait_for_others=False) == "done"
    assert sb.next_action(trials, 3, deadline_passed=False, wait_for_others=True) == "run"
    assert sb.position(trials) == 3
    assert sb.next_action(trials, 3, deadline_passed=True, wait_for_others=True) == "timeout"
    # past the deadline with nothing complete: one more trial still runs (a study must return something)
    assert sb.next_action([T(0, "FAIL")], 3, deadline_passed=True, wait_for_others=True) == "run"


def test_the_baseline_runs_once_unless_interrupted():
    assert sb.needs_baseline([])
    assert not sb.needs_baseline([T(0, "COMPLETE", 0.1, user_attrs={"baseline": True})])
    assert sb.needs_baseline([T(0, "FAIL", user_attrs={"baseline": True, "interrupted": True})])


def test_summary_by_state_and_worker_with_the_best():
    trials = [T(0, "COMPLETE", 0.5, {"worker": "a"}), T(1, "COMPLETE", 0.7, {"worker": "b", "mlflow_run_id": "r1"}),
              T(2, "FAIL", None, {"worker": "a"}), T(3, "RUNNING", None, {"worker": "b"}, (2,))]
    s = sb.summary(trials, 4)
    assert s["states"] == {"COMPLETE": 2, "FAIL": 1, "RUNNING": 1} and s["finished"] == 2 and s["retried"] == [2]
    assert s["best"] == {"trial": 1, "value": 0.7, "params": {}, "worker": "b", "mlflow_run_id": "r1"}
    a, b = s["workers"]
    assert (a["worker"], a["COMPLETE"], a["FAIL"], a["best_value"]) == ("a", 1, 1, 0.5)
    assert (b["worker"], b["running"], b["best_value"]) == ("b", [3], 0.7)


def test_parallel_settings_validate_the_grace_against_the_interval():
    from pfp_mlops.settings import PipelineConfig

    cfg = PipelineConfig.model_validate({"train": {"search": {"parallel": {"heartbeat_interval_s": 5,
                                                                            "heartbeat_grace_s": 20}}}})
    assert cfg.train.search.parallel.heartbeat_grace_s == 20 and cfg.train.search.parallel.constant_liar is None
    with pytest.raises(ValueError, match="must exceed heartbeat_interval_s"):
        PipelineConfig.model_validate({"train": {"search": {"parallel": {"heartbeat_interval_s": 30,
                                                                          "heartbeat_grace_s": 30}}}})


@pytest.mark.parametrize("args", [["--worker", "--status"], ["--reap", "--status"], ["--worker", "--reap"]])
def test_worker_reap_and_status_exclude_each_other(workdir, args):
    """One line, exit 2, nothing opened (no study, no MLflow store)."""
    from tests.helpers import pfp

    r = pfp("train", *args)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip() == "pfp: error: Invalid value: --worker, --reap and --status exclude each other"
    assert not (workdir / ".pfp" / "optuna.db").exists() and not (workdir / ".pfp" / "mlflow.db").exists()
