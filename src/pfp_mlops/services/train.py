"""`pfp train`: an Optuna study on VALID → every trial an MLflow child run → best weights + training_info.json.

The objective is the VALID mAP50 of the weights a trial keeps (the metric the gates use, on a split the gates
never use: TEST stays unseen by tuning). Trial 0 of a study is the baseline — train.hyperparameters as configured,
nothing sampled — so `n_trials: 1` is a plain training and every search can say whether it beat the defaults.

Budgets: `search.n_trials` counts every finished trial of the study (earlier runs and other processes included),
so re-running resumes; `search.timeout_s` and the pipeline's time left bound the wall clock: no trial starts after
the deadline, and a running one stops at its next epoch end (pruned, or kept when the study has nothing better).

The pieces: this module holds the search (the study, the parent run, the loop deciding whether another trial
runs); `train_trials` runs one trial; `train_outputs` writes what a finished study leaves; `train_progress`
turns the state into display events.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pfp_mlops.domain import study_budget
from pfp_mlops.domain.models import SplitManifest, TrainResult
from pfp_mlops.services.context import Context, git_state, who
from pfp_mlops.services.split import current_split
from pfp_mlops.services.train_outputs import TRAINING_INFO, read_training_info, training_info_path
from pfp_mlops.services.train_progress import Progress, TrainProgress, _hms
from pfp_mlops.services.train_trials import STATUS_OF_STATE, TrialRunner

__all__ = ["STATUS_OF_STATE", "TRAINING_INFO", "TrainProgress", "_hms", "default_study_name", "optuna_storage_url",
           "read_training_info", "run_train", "training_info_path"]


def soon(fn: Any, *args: Any) -> Future:
    """fn(*args) in a background thread, overlapping the caller (subprocesses, file hashing: the GIL is free)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pfp-train")
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def default_study_name(model_name: str, split_fingerprint: str) -> str:
    """One study per model and split: a new split starts a new search, the same split resumes it."""
    return f"{model_name}-{split_fingerprint[:12]}"


def optuna_storage_url(ctx: Context) -> str:
    return ctx.settings.optuna_storage or f"sqlite:///{ctx.home / 'optuna.db'}"


class _Search:
    """One `pfp train` (or `--worker`): the study, the parent run, the loop over the trials of this process."""

    def __init__(self, ctx: Context, manifest: SplitManifest, time_budget_s: float | None, *,
                 worker: bool = False, tracking: bool = True) -> None:
        from pfp_mlops.adapters import tracking as tracking_adapter
        from pfp_mlops.adapters import tuner
        from pfp_mlops.services.train_workers import worker_id

        self.ctx = ctx
        self.manifest = manifest
        self.git = soon(git_state)  # two git subprocesses, needed only if this process creates the parent run
        self.tc = ctx.cfg.train
        self.sc = ctx.cfg.train.search
        self.worker = worker_id(ctx)
        self.ran: list[int] = []  # trial numbers this process ran
        self.reaped: list[dict[str, Any]] = []
        self.timings = {"train_s": 0.0, "wait_s": 0.0}  # inside yolo.train; waiting for others' trials
        self.t0 = time.time()
        limits = [x for x in (time_budget_s, self.sc.timeout_s) if x]
        self.deadline = self.t0 + min(limits) if limits else None
        self.trial_epochs = self.sc.trial_epochs or self.tc.epochs
        self.runs_dir = ctx.cfg.paths.runs_dir.resolve()
        self.study_name = self.sc.study_name or default_study_name(ctx.model_name, manifest.fingerprint)
        self.storage = optuna_storage_url(ctx)
        from pfp_mlops.services import trackers

        # MLflow plus the mirrors of train.trackers (W&B), loaded before anything is written (missing package: exit 2)
        self.tracker = trackers.build(ctx, lambda: tracking_adapter.Tracker(
            ctx.registry.client, ctx.registry.experiment_id(ctx.cfg.registry.training_experiment),
            retry_s=self.sc.parallel.reconnect_s if worker else 0.0)) if tracking else None
        self.study = tuner.open_study(self.storage, self.study_name, self.sc, max_epochs=self.trial_epochs,
                                      parallel=worker)
        self.storage_shown = tuner._redact(self.storage)
        self.position = 0
        self.current_trial: int | None = None
        self.last_error = ""
        self.progress = Progress(self)
        self.runner = TrialRunner(self)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.time(), 0.0)

    # --- the parent run ---
    def start_parent(self) -> str:
        """The study's parent run, shared with every worker (found, or created here)."""
        from pfp_mlops.services.train_workers import study_parent

        self.parent = study_parent(self)
        return self.parent

    def create_parent_run(self) -> str:
        tags = {"pfp.split_fingerprint": self.manifest.fingerprint, "pfp.model_name": self.ctx.model_name,
                "pfp.registered_by": who(), "pfp.role": "study", "pfp.study_name": self.study_name,
                "pfp.optuna_storage": self.storage_shown, **{f"pfp.{k}": v for k, v in self.git.result().items()}}
        parent = self.tracker.start(f"train-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
        self.tracker.params(parent, {
            "model": self.tc.model, "epochs": self.tc.epochs, "trial_epochs": self.trial_epochs,
            "imgsz": self.tc.imgsz, "batch": self.tc.batch, "seed": self.tc.seed, "device": self.ctx.settings.device,
            "study_name": self.study_name, "n_trials": self.sc.n_trials, "timeout_s": self.sc.timeout_s,
            "deadline_s": None if self.deadline is None else round(self.deadline - self.t0, 1),
            "sampler": "TPE", "sampler_seed": self.sc.sampler_seed, "pruner": self.sc.pruner,
            "pruner_warmup_epochs": self.sc.pruner_warmup_epochs,
            "pruner_startup_trials": self.sc.pruner_startup_trials, "retrain_best": self.sc.retrain_best,
            "search_space": json.dumps({k: v.model_dump(exclude_none=True) for k, v in self.sc.space.items()}),
            "constant_liar": self.study.constant_liar,
            "heartbeat_interval_s": self.sc.parallel.heartbeat_interval_s,
            "heartbeat_grace_s": self.sc.parallel.heartbeat_grace_s, "stale_retries": self.sc.parallel.stale_retries,
            **{f"hp.{k}": v for k, v in self.tc.hyperparameters.items()},
            # what --set / the train flags / Project overrides changed for this run (the values above are effective)
            **({"overrides": _overrides_param(self.ctx)} if self.ctx.extra.get("config_overrides") else {}),
        })
        self._log_dataset(parent)
        return parent

    def _log_dataset(self, parent: str) -> None:
        """The split as the run's dataset input (digest = split fingerprint); the ingest source when there is one."""
        m, src = self.manifest, self.manifest.source or {}
        profile = {"counts": m.counts, "split_fingerprint": m.fingerprint,
                   **({"source": {k: src.get(k) for k in ("format", "root", "images", "dataset_digest",
                                                           "report_digest")}} if src else {})}
        name = f"{src['format']}:{Path(src['root']).name}" if src else "pfp-split"
        self.tracker.dataset_input(parent, name=name, digest=m.fingerprint,
                                   source=json.dumps({"data_root": m.data_root, "source": src.get("root")}),
                                   profile=profile)
        if src:
            self.tracker.tags(parent, {"pfp.data_source": src.get("format", ""),
                                       "pfp.data_source_digest": src.get("dataset_digest", "")[:16]})
            report = Path(m.data_root or self.ctx.cfg.paths.data_dir) / "ingest_report.json"
            if report.is_file():
                self.tracker.artifact(parent, report, "data")

    def trial_tags(self, trial: Any) -> dict[str, Any]:
        """What a trial's child run carries besides pfp's own tags: Optuna's trial number, the worker, the retry."""
        self.ran.append(trial.number)
        trial.set_attr("worker", self.worker)
        tags = {"optuna.trial": trial.number, "optuna.study": self.study_name, "pfp.worker": self.worker}
        if trial.retry_of is not None:
            tags["pfp.retry_of"] = trial.retry_of
        return tags

    # --- the loop ---
    def search(self) -> None:
        """Run trials while the budget has room; wait while others' trials run (one may die and be re-queued)."""
        from pfp_mlops.services.train_workers import reap

        waiting_since = None
        while True:
            self.reaped += reap(self, sweep=False)
            trials = self.study.trials()
            rem = self.remaining()
            action = study_budget.next_action(trials, self.sc.n_trials, deadline_passed=rem is not None and rem <= 0,
                                              wait_for_others=True)
            if action == "done":
                break
            if action == "timeout":
                self.ctx.say(f"time budget reached after {_hms(time.time() - self.t0)}: the search stops here")
                break
            if action == "wait":
                if waiting_since is None:
                    waiting_since = time.time()
                    running = [t.number for t in trials if t.state == "RUNNING"]
                    self.ctx.say(f"budget full: waiting for trial(s) {', '.join(f'#{n}' for n in running)} "
                                 "running elsewhere")
                pause = self.sc.parallel.poll_s if rem is None else min(self.sc.parallel.poll_s, max(rem, 0.1))
                time.sleep(pause)
                self.timings["wait_s"] += pause
                continue
            waiting_since = None
            self.position = study_budget.position(trials)
            self.runner.run_trial(baseline=study_budget.needs_baseline(trials), trials=trials)


def _overrides_param(ctx: Context) -> str:
    from pfp_mlops.overrides import summary

    return summary(ctx.extra["config_overrides"])[:6000]  # MLflow's param value limit


def run_train(ctx: Context, *, time_budget_s: float | None = None) -> TrainResult:
    """Run (or resume) the study, track every trial, keep the best weights (of any worker), write
    training_info.json: the finishing step of a study that `pfp train --worker` processes may share."""
    from pfp_mlops.services.train_outputs import finish

    manifest = current_split(ctx.cfg)
    runs_dir = ctx.cfg.paths.runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    from pfp_mlops.adapters.dvc import data_version  # the DVC hash of data/ (issue 5): lineage of the version

    # Hashing data/ (when DVC has no current record) overlaps the search instead of following it.
    s = _Search(ctx, manifest, time_budget_s)
    s.data_version = soon(data_version, ctx.cfg.paths.data_dir)
    parent = s.start_parent()
    status = "FAILED"
    try:
        trials = s.study.trials()
        s.progress.emit("start", trials=trials, message=f"study {s.study_name} ({s.storage_shown}): "
                        f"{study_budget.finished(trials)}/{s.sc.n_trials} trials done before this run")
        s.search()
        result = finish(s, parent, manifest, runs_dir)
        status = "FINISHED"
        return result
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        s.tracker.end(parent, status)
