"""Several processes, one study: the study's MLflow parent run, the reaper, `--status`, and the worker result.

- One parent run per study and MLflow store, found or created by the study: its id is a study attribute claimed
  atomically (first writer wins), so workers started together agree without talking to each other.
- The reaper makes Optuna and MLflow agree after a worker died: Optuna's stale trials (no heartbeat for the
  grace period) become FAIL (and are re-queued, `parallel.stale_retries`), and every trial run still RUNNING in
  MLflow whose Optuna trial is no longer running is ended FAILED (FINISHED if it had completed) with the reason.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.domain import study_budget
from pfp_mlops.domain.models import Result


@dataclass(frozen=True)
class WorkerResult(Result):
    study: str
    worker: str
    parent_run_id: str
    trials_run: list[int]
    reaped: list[dict[str, Any]]
    status: dict[str, Any]
    duration_s: float
    # where this worker's time went: training, waiting for others' trials, Optuna storage calls (coordination)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReapResult(Result):
    study: str
    storage: str
    reaped: list[dict[str, Any]]
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyStatus(Result):
    study: str
    storage: str
    heartbeat_interval_s: int
    heartbeat_grace_s: int
    status: dict[str, Any]


def worker_id(ctx: Any) -> str:
    """PFP_WORKER_ID as given, else host + the index a Kubernetes Indexed Job or a Slurm array gives, else host
    + pid (a compose replica's host name is its container id)."""
    if ctx.settings.worker_id:
        return ctx.settings.worker_id
    index = os.environ.get("JOB_COMPLETION_INDEX") or os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{socket.gethostname()}-{index if index else os.getpid()}"


def _parent_key(ctx: Any, experiment_id: str) -> str:
    """Per MLflow store: two stores (two PFP_HOMEs on one Optuna storage) each get their own parent run."""
    digest = hashlib.sha1(f"{ctx.settings.tracking_uri()}|{experiment_id}".encode()).hexdigest()[:12]
    return f"mlflow_parent_run:{digest}"


def study_parent(s: Any) -> str:
    """The study's parent run: the one already claimed (re-opened: it receives trials again) or a new one."""
    from pfp_mlops.adapters import tracking

    client = s.tracker.client
    key = _parent_key(s.ctx, s.tracker.experiment_id)
    existing = s.study.attrs().get(key)
    if existing:
        status = tracking.run_status(client, existing)
        if status is not None:
            if status != "RUNNING":
                tracking.reopen(client, existing)
            return str(existing)
    new = s.create_parent_run()
    if existing:  # the claimed run is gone from this store (deleted by hand): the new one replaces it
        s.study.set_attr(key, new)
        return new
    won = s.study.claim_attr(key, new)
    if won != new:  # another process created the study's parent at the same moment: use that one
        tracking.delete(client, new)
        if tracking.run_status(client, won) not in (None, "RUNNING"):
            tracking.reopen(client, won)
        return str(won)
    return new


def reap(s: Any, *, sweep: bool) -> list[dict[str, Any]]:
    """Fail stale trials (Optuna) and end their runs (MLflow). `sweep` also checks every RUNNING trial run of the
    study, not only those this call failed: it catches a reaper that died between the two steps."""
    from pfp_mlops.adapters import tracking

    stale = {t.number for t in s.study.reap()}
    if not stale and not sweep:
        return []
    trials = {t.number: t for t in s.study.trials()}
    grace = s.sc.parallel.heartbeat_grace_s
    fixed = []
    for run in tracking.running_trial_runs(s.tracker.client, s.tracker.experiment_id, s.study_name):
        try:
            n = int(run.data.tags.get("pfp.trial_number", ""))
        except ValueError:
            continue
        t = trials.get(n)
        if t is None or t.state in ("RUNNING", "WAITING") or t.user_attrs.get("mlflow_run_id") != run.info.run_id:
            continue  # alive, or a run of another storage's study with the same name
        if n in stale or t.state == "FAIL":
            reason = (f"worker {t.user_attrs.get('worker', '?')} stopped: no heartbeat for more than {grace}s; "
                      f"Optuna trial #{n} is {t.state}")
        else:
            reason = f"the run was left open by its worker; Optuna trial #{n} is {t.state}"
        status = "FAILED" if t.state == "FAIL" else "FINISHED"
        s.tracker.log(run.info.run_id, tags={"pfp.trial_state": t.state, "pfp.error": reason,
                                             "pfp.reaped_by": s.worker})
        s.tracker.end(run.info.run_id, status)
        fixed.append({"trial": n, "run_id": run.info.run_id, "status": status, "reason": reason,
                      "retried": n in study_budget.superseded(trials.values())})
        s.ctx.say(f"reaped trial #{n}: {reason} (MLflow run {run.info.run_id} → {status})")
    for n in sorted(stale - {f["trial"] for f in fixed}):
        fixed.append({"trial": n, "run_id": trials[n].user_attrs.get("mlflow_run_id") if n in trials else None,
                      "status": None, "reason": f"no heartbeat for more than {grace}s", "retried": True})
    return fixed


def run_reap(ctx: Any) -> ReapResult:
    s = open_search(ctx)
    reaped = reap(s, sweep=True)
    return ReapResult(s.study_name, s.storage_shown, reaped, study_budget.summary(s.study.trials(), s.sc.n_trials))


def run_status(ctx: Any) -> StudyStatus:
    s = open_search(ctx, tracking=False)
    pc = s.sc.parallel
    return StudyStatus(s.study_name, s.storage_shown, pc.heartbeat_interval_s, pc.heartbeat_grace_s,
                       study_budget.summary(s.study.trials(), s.sc.n_trials))


def open_search(ctx: Any, *, tracking: bool = True) -> Any:
    from pfp_mlops.services.split import current_split
    from pfp_mlops.services.train import _Search

    return _Search(ctx, current_split(ctx.cfg), None, worker=True, tracking=tracking)


def _open(ctx: Any, time_budget_s: float | None) -> Any:
    from pfp_mlops.services.split import current_split
    from pfp_mlops.services.train import _Search

    return _Search(ctx, current_split(ctx.cfg), time_budget_s, worker=True)


def run_worker(ctx: Any, *, time_budget_s: float | None = None) -> WorkerResult:
    """Join the study: reap, then run trials until the study has n_trials finished ones or time is up.

    No best.pt, no training_info.json, no retrain: that is `pfp train`'s finishing step. The last worker to see
    the budget spent with nothing running ends the parent run; `pfp train` re-opens it to finish."""
    s = _open(ctx, time_budget_s)
    s.parent = study_parent(s)
    reaped = reap(s, sweep=True)
    trials = s.study.trials()
    s.progress.emit("start", trials=trials, message=f"worker {s.worker} joined study {s.study_name} "
                    f"({s.storage_shown}): {study_budget.finished(trials)}/{s.sc.n_trials} trials finished")
    s.search()
    trials = s.study.trials()
    if study_budget.finished(trials) >= s.sc.n_trials and not any(t.state == "RUNNING" for t in trials):
        s.tracker.end(s.parent, "FINISHED")
    wall = time.time() - s.t0
    timings = {**s.timings, "storage_open_s": s.study.open_s, "storage_s": s.study.storage_s,
               "storage_calls": s.study.storage_calls, "wall_s": wall,
               "storage_per_trial_s": s.study.storage_s / max(len(s.ran), 1)}
    return WorkerResult(s.study_name, s.worker, s.parent, list(s.ran), reaped + s.reaped,
                        study_budget.summary(trials, s.sc.n_trials), round(wall, 2),
                        {k: round(v, 4) for k, v in timings.items()})
