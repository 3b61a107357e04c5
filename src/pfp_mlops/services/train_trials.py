"""One trial of the study (and the optional retrain of the best): train, track as an MLflow child run, tell Optuna.

The search (`services/train.py`) decides *whether* a trial runs; this module decides *how* one runs and how its
outcome is recorded, so that Optuna's state, the MLflow run's status and the `result` attribute another machine
reads always agree: COMPLETE/PRUNED → FINISHED, FAIL → FAILED, Ctrl-C → FAIL (interrupted) + KILLED.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import InfraError, UserError

STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


class TrialRunner:
    """Runs trials for a search (its study, tracker, parent run, deadline and progress)."""

    def __init__(self, search: Any) -> None:
        self.s = search

    def trial_args(self, params: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
        tc = self.s.tc
        p = dict(params)
        batch = int(p.pop("batch", tc.batch))
        imgsz = int(p.pop("imgsz", tc.imgsz))
        hyper = {**tc.hyperparameters, **p}
        # Ultralytics' optimizer=auto ignores lr0 and momentum: a search over them needs a named optimizer.
        if ({"lr0", "momentum"} & p.keys()) and str(hyper.get("optimizer", "auto")).lower() == "auto":
            hyper["optimizer"] = "SGD"
        return batch, imgsz, hyper

    def run_trial(self, *, baseline: bool, trials: list[Any] | None = None) -> None:
        """`trials`: the study as the loop read it before asking (for the display's counts)."""
        s = self.s
        trial = s.study.ask(baseline=baseline, may_pop_retry=trials is None or any(t.state == "WAITING"
                                                                                    for t in trials))
        s.current_trial = trial.number
        batch, imgsz, hyper = self.trial_args(trial.params)
        params = {"model": s.tc.model, "epochs": s.trial_epochs, "imgsz": imgsz, "batch": batch,
                  "seed": s.tc.seed, "device": s.ctx.settings.device, **hyper}
        child = s.tracker.start(f"trial-{trial.number}", parent_id=s.parent, tags={
            "pfp.role": "trial", "pfp.study_name": s.study_name, "pfp.trial_number": trial.number,
            "pfp.baseline": str(trial.baseline).lower(), "pfp.split_fingerprint": s.manifest.fingerprint,
            **s.trial_tags(trial)})
        trial.set_attr("mlflow_run_id", child)
        s.tracker.params(child, params)
        kind = "baseline" if trial.baseline else "sampled"
        if trial.retry_of is not None:
            kind += f", re-run of stale trial #{trial.retry_of}"
        s.progress.emit("trial_start", epochs=s.trial_epochs, trials=trials,
                        message=f"trial {s.position}/{s.sc.n_trials} (#{trial.number}, {kind}): "
                        + (", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
                           or "configured hyperparameters"))
        t0 = time.time()
        flags = {"pruned": False, "cut": False}
        status = "FAILED"
        try:
            out = self.train(trial, child, batch, imgsz, hyper, flags, name=f"trial-{trial.number:03d}")
            value = _finite(out.valid_metrics.get("map50"))
            state = "COMPLETE"
            if flags["pruned"]:
                state = "PRUNED"
            elif flags["cut"] and s.study.count("COMPLETE") > 0:
                state = "PRUNED"  # cut short by the deadline: not comparable with full trials
            if value is None and state == "COMPLETE":
                state, s.last_error = "FAIL", "training produced no validation metrics"
                trial.set_attr("error", s.last_error)
            # One attribute, one storage commit: what the finishing step (here or on another machine) needs.
            trial.set_attr("result", {
                "weights": str(out.best), "save_dir": str(out.save_dir), "valid_metrics": out.valid_metrics,
                "epochs": out.epochs_run, "cut_by_deadline": flags["cut"],
                "train_params": {k: v for k, v in params.items() if isinstance(v, int | float | str | bool)}})
            s.tracker.log(child, metrics={**{f"final_valid_{k}": v for k, v in out.valid_metrics.items()},
                                          "duration_s": time.time() - t0, "epochs_run": out.epochs_run},
                          tags={"pfp.trial_state": state})
            self.log_outputs(child, out.save_dir, out.best if state == "COMPLETE" else None)
            s.study.tell(trial, state, value)
            status = STATUS_OF_STATE[state]
            v = "-" if value is None else f"{value:.4f}"
            s.progress.emit("trial_end", message=f"trial #{trial.number} {state.lower()}: valid mAP50 {v}, "
                            f"{out.epochs_run} epochs, {time.time() - t0:.1f}s")
        except KeyboardInterrupt:
            status = "KILLED"
            trial.set_attr("interrupted", True)
            s.tracker.log(child, metrics={"duration_s": time.time() - t0},
                          tags={"pfp.trial_state": "FAIL", "pfp.error": "interrupted"})
            s.study.tell(trial, "FAIL")
            raise
        except (UserError, InfraError) as e:  # bad config or data, storage down: no later trial can do better
            self.fail(trial, child, f"{type(e).__name__}: {e.message}", t0)
            raise
        except Exception as e:  # noqa: BLE001 - a crashed trial (out of memory, NaN, …) fails alone
            self.fail(trial, child,
                      f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}", t0)
            s.progress.emit("trial_end", message=f"trial #{trial.number} failed: {s.last_error}")
            from pfp_mlops.adapters import yolo

            yolo.release_memory()
        finally:
            trial.stop_heartbeat()
            s.tracker.end(child, status)
            s.current_trial = None

    def fail(self, trial: Any, child: str, error: str, t0: float) -> None:
        s = self.s
        s.last_error = error
        trial.set_attr("error", error)
        s.tracker.log(child, metrics={"duration_s": time.time() - t0},
                      tags={"pfp.trial_state": "FAIL", "pfp.error": error})
        s.study.tell(trial, "FAIL")

    def train(self, trial: Any, child: str, batch: int, imgsz: int, hyper: dict[str, Any], flags: dict[str, bool],
              *, name: str, epochs: int | None = None) -> Any:
        from pfp_mlops.adapters import yolo

        s = self.s
        epochs = epochs or s.trial_epochs

        def on_epoch(epoch: int, metrics: dict[str, float], trainer: Any) -> None:
            s.tracker.metrics(child, {**{f"valid_{k}": v for k, v in metrics.items()},
                                      **yolo.train_losses(trainer)}, step=epoch)
            value = _finite(metrics.get("map50"))
            if trial is not None and value is not None:
                trial.report(value, epoch)
                if epoch < epochs and trial.should_prune(epoch):
                    flags["pruned"] = True
                    yolo.request_stop(trainer, plots=False)
            if s.deadline is not None and time.time() >= s.deadline and epoch < epochs \
                    and not flags["pruned"]:
                flags["cut"] = True
                yolo.request_stop(trainer)
            s.progress.emit("epoch", epoch=epoch, epochs=epochs, current=value)

        t0 = time.perf_counter()
        try:
            return yolo.train(
                model_yaml=s.tc.model, data_yaml=s.manifest.data_yaml,
                project=s.runs_dir / "study" / _safe(s.study_name), name=name, epochs=epochs, imgsz=imgsz,
                batch=batch, workers=s.tc.workers, seed=s.tc.seed, patience=s.tc.patience,
                device=s.ctx.settings.device, amp=s.tc.amp, hyperparameters=hyper, on_epoch=on_epoch,
                plots=s.tc.plots,
            )
        finally:
            s.timings["train_s"] += time.perf_counter() - t0

    def log_outputs(self, run_id: str, save_dir: Path, weights: Path | None) -> None:
        from pfp_mlops.adapters import yolo

        tracker = self.s.tracker
        results = save_dir / "results.csv"
        if results.is_file():
            tracker.artifact(run_id, results)
        for png in yolo.training_plots(save_dir):
            tracker.artifact(run_id, png, "plots")
        if weights is not None and weights.is_file():
            tracker.artifact(run_id, weights, "weights")

    def retrain(self, best: Any) -> Any:
        """Retrain the best params for train.epochs (a child run, not a trial); its weights become the output."""
        s = self.s
        batch, imgsz, hyper = self.trial_args(dict(best.params))
        child = s.tracker.start("retrain-best", parent_id=s.parent, tags={
            "pfp.role": "retrain", "pfp.study_name": s.study_name, "pfp.trial_number": best.number})
        run_params = {"model": s.tc.model, "epochs": s.tc.epochs, "imgsz": imgsz, "batch": batch,
                      "seed": s.tc.seed, "device": s.ctx.settings.device, **hyper}
        s.tracker.params(child, run_params)
        s.ctx.say(f"retraining trial #{best.number}'s params for {s.tc.epochs} epochs")
        status = "FAILED"
        try:
            out = self.train(None, child, batch, imgsz, hyper, {"pruned": False, "cut": False},
                             name="retrain-best", epochs=s.tc.epochs)
            s.tracker.metrics(child, {f"final_valid_{k}": v for k, v in out.valid_metrics.items()})
            self.log_outputs(child, out.save_dir, out.best)
            status = "FINISHED"
            return out, child, run_params
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            s.tracker.end(child, status)
