"""What a finished study leaves behind: runs/best.pt, runs/training_info.json, trials.json and the parent run's
summary (best trial, study curve, weights, plots). `register` reads training_info.json; nothing else is its input.

The best trial may have been trained on another machine sharing the study: its weights then come from its MLflow
child run (logged there by whichever worker trained it).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError, TrainingFailed
from pfp_mlops.domain.models import SplitManifest, TrainResult
from pfp_mlops.services.context import Context

TRAINING_INFO = "training_info.json"


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


def finish(s: Any, parent: str, manifest: SplitManifest, runs_dir: Path) -> TrainResult:
    """Best trial across every process of the study → best.pt (optionally retrained) + training_info.json."""
    from pfp_mlops.adapters import yolo
    from pfp_mlops.domain.study_budget import best as best_of

    trials = s.study.trials()
    best = best_of(trials)
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
            out, retrain_run, params = s.runner.retrain(best)
            weights_src, save_dir, valid_metrics, epochs = out.best, out.save_dir, out.valid_metrics, out.epochs_run
            retrained = retrain_run
    best_pt = runs_dir / "best.pt"
    shutil.copyfile(weights_src, best_pt)
    duration = round(time.time() - s.t0, 2)
    study = {"name": s.study_name, "storage": s.storage_shown, "best_trial": best.number,
             "best_value": best.value, "best_params": best.params, "best_trial_run_id": trial_run,
             "n_trials": s.sc.n_trials, "trials": len(trials), **counts, "retrained_run_id": retrained,
             "objective": "valid map50"}
    dv = s.data_version.result()  # started with the search (services/train.py): the DVC hash of data/
    info = {
        "run_id": parent,
        "data_version": dv.md5,
        "weights": str(best_pt),
        "split_fingerprint": manifest.fingerprint,
        "data_yaml": manifest.data_yaml,
        "data_source": manifest.source,  # `pfp ingest`'s description of the data, when it brought it in
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
        **s.tracker.info(),  # where W&B keeps this training (train.trackers), e.g. {"wandb": {"url": …}}
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info_path = runs_dir / TRAINING_INFO
    info_path.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    t = s.tracker
    t.new_params(parent, {"best_trial": best.number, **{f"best.{k}": v for k, v in best.params.items()}})
    running_best, curve = None, []
    for tr in sorted(trials, key=lambda x: x.number):
        if tr.state == "COMPLETE" and tr.value is not None:
            running_best = tr.value if running_best is None else max(running_best, tr.value)
        if running_best is not None:
            curve.append(("study_best_valid_map50", running_best, tr.number))
    t.log(parent, metrics={**{f"final_valid_{k}": v for k, v in valid_metrics.items()},
                           "best_valid_map50": best.value, "trials_complete": counts["complete"],
                           "trials_pruned": counts["pruned"], "trials_failed": counts["fail"], "duration_s": duration},
          steps=curve, tags={"pfp.best_trial": best.number, "pfp.best_trial_run_id": trial_run or "",
                             "pfp.data_version": dv.md5 or "", "pfp.data_version_source": dv.source})
    t.artifact(parent, best_pt, "weights")
    s.runner.log_outputs(parent, save_dir, None)
    t.artifact(parent, info_path)
    trials_path = runs_dir / "trials.json"
    trials_path.write_text(json.dumps([asdict(tr) for tr in trials], indent=2, default=str), encoding="utf-8")
    t.artifact(parent, trials_path, "study")
    s.progress.emit("end", trials=trials, message=f"best trial #{best.number}: valid mAP50 {best.value:.4f} "
                    f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed)")
    return TrainResult(run_id=parent, weights=str(best_pt), training_info=str(info_path), valid_metrics=valid_metrics,
                       params=params, split_fingerprint=manifest.fingerprint, epochs=epochs, duration_s=duration,
                       study=study)
