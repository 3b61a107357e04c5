"""The trial budget of a study shared by several processes (pure: trials in, decisions out).

`n_trials` counts finished trials of the whole study: COMPLETE, PRUNED and FAIL — except a FAIL that a Ctrl-C
caused (interrupted: nothing wrong with its params) and a FAIL that was re-queued after its worker died (the re-run
counts instead). A process runs another trial only if the finished plus the running ones leave room; otherwise it
waits while others' trials run (one of them may die and be re-queued) and stops when the budget is spent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

Action = Literal["run", "wait", "done", "timeout"]


def superseded(trials: Iterable[Any]) -> set[int]:
    """Trial numbers that a later re-run replaces (their worker stopped heartbeating)."""
    return {n for t in trials for n in (t.retried_from or ())}


def counts_toward_budget(t: Any, replaced: set[int]) -> bool:
    if t.state in ("COMPLETE", "PRUNED"):
        return True
    return t.state == "FAIL" and not t.user_attrs.get("interrupted") and t.number not in replaced


def finished(trials: Sequence[Any]) -> int:
    replaced = superseded(trials)
    return sum(counts_toward_budget(t, replaced) for t in trials)


def next_action(trials: Sequence[Any], n_trials: int, *, deadline_passed: bool, wait_for_others: bool) -> Action:
    """run another trial, wait for others' running ones, stop (budget spent), or stop (time is up)."""
    done = finished(trials)
    if done >= n_trials:
        return "done"
    if deadline_passed and any(t.state == "COMPLETE" for t in trials):
        return "timeout"
    running = sum(t.state == "RUNNING" for t in trials)
    if done + running >= n_trials:
        return "wait" if wait_for_others else "done"
    return "run"


def position(trials: Sequence[Any]) -> int:
    """1-based place of the next trial in the budget (earlier runs' and other processes' trials included)."""
    return finished(trials) + sum(t.state == "RUNNING" for t in trials) + 1


def needs_baseline(trials: Iterable[Any]) -> bool:
    """Trial 0 of a study trains the configured hyperparameters; a Ctrl-C'd baseline is run again."""
    return not any(t.user_attrs.get("baseline") and not t.user_attrs.get("interrupted") for t in trials)


def best(trials: Sequence[Any]) -> Any | None:
    """The best COMPLETE trial (highest value, the earlier one on a tie), or None."""
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def summary(trials: Sequence[Any], n_trials: int) -> dict[str, Any]:
    """What `pfp train --status` shows: trials by state, per worker, the best so far, the budget left."""
    states: dict[str, int] = {}
    workers: dict[str, dict[str, Any]] = {}
    for t in trials:
        states[t.state] = states.get(t.state, 0) + 1
        w = str(t.user_attrs.get("worker") or "unknown")
        row = workers.setdefault(w, {"worker": w, "trials": 0, "running": [], "best_value": None, **{
            s: 0 for s in ("COMPLETE", "PRUNED", "FAIL")}})
        row["trials"] += 1
        if t.state in ("COMPLETE", "PRUNED", "FAIL"):
            row[t.state] += 1
        if t.state == "RUNNING":
            row["running"].append(t.number)
        if t.state == "COMPLETE" and t.value is not None and (row["best_value"] is None or t.value > row["best_value"]):
            row["best_value"] = t.value
    top = best(trials)
    return {
        "n_trials": n_trials, "finished": finished(trials), "states": states,
        "retried": sorted(superseded(trials)),
        "workers": sorted(workers.values(), key=lambda r: r["worker"]),
        "best": None if top is None else {"trial": top.number, "value": top.value, "params": top.params,
                                          "worker": top.user_attrs.get("worker"),
                                          "mlflow_run_id": top.user_attrs.get("mlflow_run_id")},
    }
