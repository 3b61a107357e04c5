"""`pfp train`: an Optuna study on VALID → every trial an MLflow child run → best weights + training_info.json.

The objective is the VALID mAP50 of the weights a trial keeps (the metric the gates use, on a split the gates
never use: TEST stays unseen by tuning). Trial 0 of a study is the baseline — train.hyperparameters as configured,
nothing sampled — so `n_trials: 1` is a plain training and every search can say whether it beat the defaults.

Budgets: `search.n_trials` counts every finished trial of the study (earlier runs and other processes included),
so re-running resumes; `search.timeout_s` and the pipeline's time left bound the wall clock: no trial starts after
the deadline, and a running one stops at its next epoch end (pruned, or kept when the study has nothing better).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError, InfraError, TrainingFailed, UserError
from pfp_mlops.domain.models import TrainResult
from pfp_mlops.services.context import Context, git_state, who
from pfp_mlops.services.split import current_split

TRAINING_INFO = "training_info.json"
STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def training_info_path(ctx: Context) -> Path:
    return ctx.cfg.paths.runs_dir / TRAINING_INFO


def read_training_info(ctx: Context, path: Path | None = None) -> dict[str, Any]:
    p = path or training_info_path(ctx)
    if not p.is_file():
        raise DataError(f"{p} not found; run `pfp train` first")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{p}: not valid JSON; run `pfp train` again") from None
    missing = [k for k in ("run_id", "weights") if not isinstance(info, dict) or not info.get(k)]
    if missing:
        raise DataError(f"{p}: missing {', '.join(missing)}; run `pfp train` again")
    if not Path(info["weights"]).is_file():
        raise DataError(f"{p}: weights file {info['weights']} not found; run `pfp train` again")
    return info


def default_study_name(model_name: str, split_fingerprint: str) -> str:
    """One study per model and split: a new split starts a new search, the same split resumes it."""
    return f"{model_name}-{split_fingerprint[:12]}"


def optuna_storage_url(ctx: Context) -> str:
    return ctx.settings.optuna_storage or f"sqlite:///{ctx.home / 'optuna.db'}"


@dataclass
class TrainProgress:
    """A snapshot for progress displays (the CLI's rich view, or plain log lines)."""

    event: str  # start | trial_start | epoch | trial_end | end
    study: str
    trial: int  # position in the budget, 1-based (earlier runs' trials count)
    n_trials: int
    trial_number: int | None
    epoch: int
    epochs: int
    current_map50: float | None
    best_map50: float | None
    complete: int
    pruned: int
    failed: int
    elapsed_s: float
    remaining_s: float | None
    message: str = ""

    def line(self) -> str:
        cur = "-" if self.current_map50 is None else f"{self.current_map50:.4f}"
        best = "-" if self.best_map50 is None else f"{self.best_map50:.4f}"
        left = "" if self.remaining_s is None else f", budget left {_hms(self.remaining_s)}"
        return (f"trial {self.trial}/{self.n_trials} epoch {self.epoch}/{self.epochs}: valid mAP50 {cur} "
                f"(best {best}; pruned {self.pruned}, failed {self.failed}; elapsed {_hms(self.elapsed_s)}{left})")


def _hms(s: float) -> str:
    s = max(int(s), 0)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _finished(trials: list[Any]) -> int:
    """Trials that count toward n_trials: done, pruned, crashed — not the ones a Ctrl-C interrupted."""
    return sum(1 for t in trials if t.state in ("COMPLETE", "PRUNED")
               or (t.state == "FAIL" and not t.user_attrs.get("interrupted")))


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class _Search:
    """One `pfp train`: the study, the parent run, the trials of this process."""

    def __init__(self, ctx: Context, manifest: dict[str, Any], time_budget_s: float | None) -> None:
        from pfp_mlops.adapters import tracking, tuner

        self.ctx = ctx
        self.manifest = manifest
        self.tc = ctx.cfg.train
        self.sc = ctx.cfg.train.search
        self.t0 = time.time()
        limits = [x for x in (time_budget_s, self.sc.timeout_s) if x]
        self.deadline = self.t0 + min(limits) if limits else None
        self.trial_epochs = self.sc.trial_epochs or self.tc.epochs
        self.runs_dir = ctx.cfg.paths.runs_dir.resolve()
        self.study_name = self.sc.study_name or default_study_name(ctx.model_name, manifest["fingerprint"])
        self.storage = optuna_storage_url(ctx)
        self.study = tuner.open_study(self.storage, self.study_name, self.sc, max_epochs=self.trial_epochs)
        self.storage_shown = tuner._redact(self.storage)
        self.tracker = tracking.Tracker(ctx.registry.client,
                                        ctx.registry.experiment_id(ctx.cfg.registry.training_experiment))
        self.sink: Callable[[TrainProgress], None] | None = ctx.extra.get("train_progress")
        self.best_value: float | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.position = 0
        self.current_trial: int | None = None
        self.last_error = ""

    # --- progress ---
    def remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.time(), 0.0)

    def refresh(self) -> None:
        """Study counts and best value for the display: read at trial boundaries, not every epoch."""
        trials = self.study.trials()
        best = self.study.best()
        self.counts = {st: sum(t.state == st for t in trials) for st in ("COMPLETE", "PRUNED", "FAIL")}
        self.best_value = best.value if best else None

    def emit(self, event: str, *, epoch: int = 0, epochs: int = 0, current: float | None = None,
             message: str = "") -> None:
        if event != "epoch":
            self.refresh()
        c = self.counts
        p = TrainProgress(event, self.study_name, self.position, self.sc.n_trials, self.current_trial, epoch, epochs,
                          current, self.best_value, c["COMPLETE"], c["PRUNED"], c["FAIL"], time.time() - self.t0,
                          self.remaining(), message)
        if self.sink is not None:
            self.sink(p)
        if message:
            self.ctx.say(message)
        elif event == "epoch" and self.sink is None:
            self.ctx.say(p.line())

    # --- the parent run ---
    def start_parent(self) -> str:
        tags = {"pfp.split_fingerprint": self.manifest["fingerprint"], "pfp.model_name": self.ctx.model_name,
                "pfp.registered_by": who(), "pfp.role": "study", "pfp.study_name": self.study_name,
                "pfp.optuna_storage": self.storage_shown, **{f"pfp.{k}": v for k, v in git_state().items()}}
        self.parent = self.tracker.start(f"train-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
        self.tracker.params(self.parent, {
            "model": self.tc.model, "epochs": self.tc.epochs, "trial_epochs": self.trial_epochs,
            "imgsz": self.tc.imgsz, "batch": self.tc.batch, "seed": self.tc.seed, "device": self.ctx.settings.device,
            "study_name": self.study_name, "n_trials": self.sc.n_trials, "timeout_s": self.sc.timeout_s,
            "deadline_s": None if self.deadline is None else round(self.deadline - self.t0, 1),
            "sampler": "TPE", "sampler_seed": self.sc.sampler_seed, "pruner": self.sc.pruner,
            "pruner_warmup_epochs": self.sc.pruner_warmup_epochs,
            "pruner_startup_trials": self.sc.pruner_startup_trials, "retrain_best": self.sc.retrain_best,
            "search_space": json.dumps({k: v.model_dump(exclude_none=True) for k, v in self.sc.space.items()}),
            **{f"hp.{k}": v for k, v in self.tc.hyperparameters.items()},
        })
        self._log_dataset()
        return self.parent

    def _log_dataset(self) -> None:
        """The split as the run's dataset input (digest = split fingerprint); the ingest source when there is one."""
        m, src = self.manifest, self.manifest.get("source") or {}
        profile = {"counts": m.get("counts"), "split_fingerprint": m["fingerprint"],
                   **({"source": {k: src.get(k) for k in ("format", "root", "images", "dataset_digest",
                                                           "report_digest")}} if src else {})}
        name = f"{src['format']}:{Path(src['root']).name}" if src else "pfp-split"
        self.tracker.dataset_input(self.parent, name=name, digest=m["fingerprint"],
                                   source=json.dumps({"data_root": m.get("data_root"), "source": src.get("root")}),
                                   profile=profile)
        if src:
            self.tracker.tags(self.parent, {"pfp.data_source": src.get("format", ""),
                                            "pfp.data_source_digest": src.get("dataset_digest", "")[:16]})
            report = Path(m.get("data_root") or self.ctx.cfg.paths.data_dir) / "ingest_report.json"
            if report.is_file():
                self.tracker.artifact(self.parent, report, "data")

    # --- trials ---
    def trial_args(self, params: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
        p = dict(params)
        batch = int(p.pop("batch", self.tc.batch))
        imgsz = int(p.pop("imgsz", self.tc.imgsz))
        hyper = {**self.tc.hyperparameters, **p}
        # Ultralytics' optimizer=auto ignores lr0 and momentum: a search over them needs a named optimizer.
        if ({"lr0", "momentum"} & p.keys()) and str(hyper.get("optimizer", "auto")).lower() == "auto":
            hyper["optimizer"] = "SGD"
        return batch, imgsz, hyper

    def run_trial(self, *, baseline: bool) -> None:
        trial = self.study.ask(baseline=baseline)
        self.current_trial = trial.number
        batch, imgsz, hyper = self.trial_args(trial.params)
        params = {"model": self.tc.model, "epochs": self.trial_epochs, "imgsz": imgsz, "batch": batch,
                  "seed": self.tc.seed, "device": self.ctx.settings.device, **hyper}
        child = self.tracker.start(f"trial-{trial.number}", parent_id=self.parent, tags={
            "pfp.role": "trial", "pfp.study_name": self.study_name, "pfp.trial_number": trial.number,
            "pfp.baseline": str(baseline).lower(), "pfp.split_fingerprint": self.manifest["fingerprint"]})
        trial.set_attr("mlflow_run_id", child)
        self.tracker.params(child, params)
        kind = "baseline" if baseline else "sampled"
        self.emit("trial_start", epochs=self.trial_epochs,
                  message=f"trial {self.position}/{self.sc.n_trials} (#{trial.number}, {kind}): "
                  + (", ".join(f"{k}={_short(v)}" for k, v in trial.params.items()) or "configured hyperparameters"))
        t0 = time.time()
        flags = {"pruned": False, "cut": False}
        status = "FAILED"
        try:
            out = self._train(trial, child, batch, imgsz, hyper, flags, name=f"trial-{trial.number:03d}")
            value = _finite(out.valid_metrics.get("map50"))
            state = "COMPLETE"
            if flags["pruned"]:
                state = "PRUNED"
            elif flags["cut"] and self.study.count("COMPLETE") > 0:
                state = "PRUNED"  # cut short by the deadline: not comparable with full trials
            if value is None and state == "COMPLETE":
                state, self.last_error = "FAIL", "training produced no validation metrics"
                trial.set_attr("error", self.last_error)
            # One attribute, one storage commit: what _finish (here or on another machine) needs of the trial.
            trial.set_attr("result", {
                "weights": str(out.best), "save_dir": str(out.save_dir), "valid_metrics": out.valid_metrics,
                "epochs": out.epochs_run, "cut_by_deadline": flags["cut"],
                "train_params": {k: v for k, v in params.items() if isinstance(v, int | float | str | bool)}})
            self.tracker.log(child, metrics={**{f"final_valid_{k}": v for k, v in out.valid_metrics.items()},
                                             "duration_s": time.time() - t0, "epochs_run": out.epochs_run},
                             tags={"pfp.trial_state": state})
            self._log_outputs(child, out.save_dir, out.best if state == "COMPLETE" else None)
            self.study.tell(trial, state, value)
            status = STATUS_OF_STATE[state]
            v = "-" if value is None else f"{value:.4f}"
            self.emit("trial_end", message=f"trial #{trial.number} {state.lower()}: valid mAP50 {v}, "
                      f"{out.epochs_run} epochs, {time.time() - t0:.1f}s")
        except KeyboardInterrupt:
            status = "KILLED"
            trial.set_attr("interrupted", True)
            self.tracker.log(child, metrics={"duration_s": time.time() - t0},
                             tags={"pfp.trial_state": "FAIL", "pfp.error": "interrupted"})
            self.study.tell(trial, "FAIL")
            raise
        except (UserError, InfraError) as e:  # bad config or data, storage down: no later trial can do better
            self._fail(trial, child, f"{type(e).__name__}: {e.message}", t0)
            raise
        except Exception as e:  # noqa: BLE001 - a crashed trial (out of memory, NaN, …) fails alone
            self._fail(trial, child, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}",
                       t0)
            self.emit("trial_end", message=f"trial #{trial.number} failed: {self.last_error}")
            from pfp_mlops.adapters import yolo

            yolo.release_memory()
        finally:
            self.tracker.end(child, status)
            self.current_trial = None

    def _fail(self, trial: Any, child: str, error: str, t0: float) -> None:
        self.last_error = error
        trial.set_attr("error", error)
        self.tracker.log(child, metrics={"duration_s": time.time() - t0},
                         tags={"pfp.trial_state": "FAIL", "pfp.error": error})
        self.study.tell(trial, "FAIL")

    def _train(self, trial: Any, child: str, batch: int, imgsz: int, hyper: dict[str, Any], flags: dict[str, bool],
               *, name: str, epochs: int | None = None) -> Any:
        from pfp_mlops.adapters import yolo

        epochs = epochs or self.trial_epochs

        def on_epoch(epoch: int, metrics: dict[str, float], trainer: Any) -> None:
            self.tracker.metrics(child, {**{f"valid_{k}": v for k, v in metrics.items()},
                                         **yolo.train_losses(trainer)}, step=epoch)
            value = _finite(metrics.get("map50"))
            if trial is not None and value is not None:
                trial.report(value, epoch)
                if epoch < epochs and trial.should_prune(epoch):
                    flags["pruned"] = True
                    yolo.request_stop(trainer, plots=False)
            if self.deadline is not None and time.time() >= self.deadline and epoch < epochs \
                    and not flags["pruned"]:
                flags["cut"] = True
                yolo.request_stop(trainer)
            self.emit("epoch", epoch=epoch, epochs=epochs, current=value)

        return yolo.train(
            model_yaml=self.tc.model, data_yaml=self.manifest["data_yaml"],
            project=self.runs_dir / "study" / _safe(self.study_name), name=name, epochs=epochs, imgsz=imgsz,
            batch=batch, workers=self.tc.workers, seed=self.tc.seed, patience=self.tc.patience,
            device=self.ctx.settings.device, amp=self.tc.amp, hyperparameters=hyper, on_epoch=on_epoch,
            plots=self.tc.plots,
        )

    def _log_outputs(self, run_id: str, save_dir: Path, weights: Path | None) -> None:
        from pfp_mlops.adapters import yolo

        results = save_dir / "results.csv"
        if results.is_file():
            self.tracker.artifact(run_id, results)
        for png in yolo.training_plots(save_dir):
            self.tracker.artifact(run_id, png, "plots")
        if weights is not None and weights.is_file():
            self.tracker.artifact(run_id, weights, "weights")

    # --- the loop ---
    def search(self) -> None:
        while True:
            trials = self.study.trials()
            done = _finished(trials)
            running = sum(t.state == "RUNNING" for t in trials)  # other processes' trials
            has_complete = any(t.state == "COMPLETE" for t in trials)
            if done + running >= self.sc.n_trials:
                break
            rem = self.remaining()
            if rem is not None and rem <= 0 and has_complete:
                self.ctx.say(f"time budget reached after {_hms(time.time() - self.t0)}: the search stops here")
                break
            self.position = done + running + 1
            baseline = not any(t.user_attrs.get("baseline") and not t.user_attrs.get("interrupted") for t in trials)
            self.run_trial(baseline=baseline)

    def retrain(self, best: Any) -> Any:
        """Retrain the best params for train.epochs (a child run, not a trial); its weights become the output."""
        params = dict(best.params)
        batch, imgsz, hyper = self.trial_args(params)
        child = self.tracker.start("retrain-best", parent_id=self.parent, tags={
            "pfp.role": "retrain", "pfp.study_name": self.study_name, "pfp.trial_number": best.number})
        run_params = {"model": self.tc.model, "epochs": self.tc.epochs, "imgsz": imgsz, "batch": batch,
                      "seed": self.tc.seed, "device": self.ctx.settings.device, **hyper}
        self.tracker.params(child, run_params)
        self.ctx.say(f"retraining trial #{best.number}'s params for {self.tc.epochs} epochs")
        status = "FAILED"
        try:
            out = self._train(None, child, batch, imgsz, hyper, {"pruned": False, "cut": False},
                              name="retrain-best", epochs=self.tc.epochs)
            self.tracker.metrics(child, {f"final_valid_{k}": v for k, v in out.valid_metrics.items()})
            self._log_outputs(child, out.save_dir, out.best)
            status = "FINISHED"
            return out, child, run_params
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.tracker.end(child, status)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def run_train(ctx: Context, *, time_budget_s: float | None = None) -> TrainResult:
    """Run (or resume) the study, track every trial, keep the best weights, write training_info.json."""
    manifest = current_split(ctx.cfg)
    runs_dir = ctx.cfg.paths.runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    s = _Search(ctx, manifest, time_budget_s)
    parent = s.start_parent()
    status = "FAILED"
    try:
        s.emit("start", message=f"study {s.study_name} ({s.storage_shown}): "
               f"{_finished(s.study.trials())}/{s.sc.n_trials} trials done before this run")
        s.search()
        result = _finish(s, parent, manifest, runs_dir)
        status = "FINISHED"
        return result
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        s.tracker.end(parent, status)


def _finish(s: _Search, parent: str, manifest: dict[str, Any], runs_dir: Path) -> TrainResult:
    from pfp_mlops.adapters import yolo

    trials = s.study.trials()
    best = s.study.best()
    counts = {st.lower(): sum(t.state == st for t in trials) for st in ("COMPLETE", "PRUNED", "FAIL")}
    if best is None:
        err = next((t.user_attrs.get("error") for t in reversed(trials) if t.user_attrs.get("error")), s.last_error)
        raise TrainingFailed(f"no trial of study {s.study_name} completed ({counts['fail']} failed, "
                             f"{counts['pruned']} pruned){'; last error: ' + err if err else ''} "
                             "(failed trials count toward train.search.n_trials: raise it, or set a new "
                             "train.search.study_name, to try again)")
    ua = best.user_attrs
    res = ua.get("result") or {}
    weights_src = Path(res.get("weights", ""))
    save_dir = Path(res.get("save_dir", ""))
    trial_run = ua.get("mlflow_run_id")
    if not weights_src.is_file() and trial_run:  # trained by another machine sharing the study
        fetched = s.tracker.download(trial_run, "", runs_dir / "fetched" / f"trial-{best.number}")
        weights_src, save_dir = fetched / "weights" / "best.pt", fetched
    if not weights_src.is_file():
        raise TrainingFailed(f"the weights of the best trial #{best.number} are gone ({weights_src}) and were not "
                             "logged to MLflow")
    valid_metrics = dict(res.get("valid_metrics") or {})
    params = dict(res.get("train_params") or {})
    epochs = int(res.get("epochs") or 0)
    retrained = None
    if s.sc.retrain_best:
        rem = s.remaining()
        if rem is not None and rem <= 0:
            s.ctx.say("retrain_best skipped: no time left in the budget")
        else:
            out, retrain_run, params = s.retrain(best)
            weights_src, save_dir, valid_metrics, epochs = out.best, out.save_dir, out.valid_metrics, out.epochs_run
            retrained = retrain_run
    best_pt = runs_dir / "best.pt"
    shutil.copyfile(weights_src, best_pt)
    duration = round(time.time() - s.t0, 2)
    study = {"name": s.study_name, "storage": s.storage_shown, "best_trial": best.number,
             "best_value": best.value, "best_params": best.params, "best_trial_run_id": trial_run,
             "n_trials": s.sc.n_trials, "trials": len(trials), **counts, "retrained_run_id": retrained,
             "objective": "valid map50"}
    from pfp_mlops.adapters.dvc import data_version  # the DVC hash of data/ (issue 5): lineage of the version

    dv = data_version(s.ctx.cfg.paths.data_dir)
    s.tracker.tags(parent, {"pfp.data_version": dv.md5 or "", "pfp.data_version_source": dv.source})
    info = {
        "run_id": parent,
        "data_version": dv.md5,
        "weights": str(best_pt),
        "split_fingerprint": manifest["fingerprint"],
        "data_yaml": manifest["data_yaml"],
        "data_source": manifest.get("source"),  # `pfp ingest`'s description of the data, when it brought it in
        "valid_metrics": valid_metrics,
        "params": params,
        "epochs": epochs,
        "duration_s": duration,
        "runtime": yolo.runtime_versions(),
        "model_name": s.ctx.model_name,
        "class_names": list(s.ctx.cfg.data.classes),
        "study_name": s.study_name,
        "best_trial": best.number,
        "best_params": best.params,
        "study": study,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info_path = runs_dir / TRAINING_INFO
    info_path.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    t = s.tracker
    t.params(parent, {"best_trial": best.number, **{f"best.{k}": v for k, v in best.params.items()}})
    running_best, curve = None, []
    for tr in sorted(trials, key=lambda x: x.number):
        if tr.state == "COMPLETE" and tr.value is not None:
            running_best = tr.value if running_best is None else max(running_best, tr.value)
        if running_best is not None:
            curve.append(("study_best_valid_map50", running_best, tr.number))
    t.log(parent, metrics={**{f"final_valid_{k}": v for k, v in valid_metrics.items()},
                           "best_valid_map50": best.value, "trials_complete": counts["complete"],
                           "trials_pruned": counts["pruned"], "trials_failed": counts["fail"], "duration_s": duration},
          steps=curve, tags={"pfp.best_trial": best.number, "pfp.best_trial_run_id": trial_run or ""})
    t.artifact(parent, best_pt, "weights")
    s._log_outputs(parent, save_dir, None)
    t.artifact(parent, info_path)
    trials_path = runs_dir / "trials.json"
    trials_path.write_text(json.dumps([asdict(tr) for tr in trials], indent=2, default=str), encoding="utf-8")
    t.artifact(parent, trials_path, "study")
    s.emit("end", message=f"best trial #{best.number}: valid mAP50 {best.value:.4f} "
           f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed)")
    return TrainResult(run_id=parent, weights=str(best_pt), training_info=str(info_path), valid_metrics=valid_metrics,
                       params=params, split_fingerprint=manifest["fingerprint"], epochs=epochs, duration_s=duration,
                       study=study)
