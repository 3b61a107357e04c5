"""`pfp train`: train YOLO on the current split, track it in MLflow, keep the best weights + training_info.json.

The Optuna search (issue #3) plugs in at `search_params`: today one trial with the configured hyperparameters.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.models import TrainResult
from pfp_mlops.services.context import Context, git_state, who
from pfp_mlops.services.split import current_split

TRAINING_INFO = "training_info.json"


def training_info_path(ctx: Context) -> Path:
    return ctx.cfg.paths.runs_dir / TRAINING_INFO


def read_training_info(ctx: Context, path: Path | None = None) -> dict[str, Any]:
    p = path or training_info_path(ctx)
    if not p.is_file():
        raise DataError(f"{p} not found; run `pfp train` first")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{p}: not valid JSON; run `pfp train` again") from None


def run_train(ctx: Context, *, time_budget_s: float | None = None) -> TrainResult:
    """Train with the configured parameters, log everything to one MLflow run, write training_info.json."""
    import mlflow

    from pfp_mlops.adapters import yolo
    from pfp_mlops.adapters.mlflow_registry import translate_errors

    manifest = current_split(ctx.cfg)
    tc = ctx.cfg.train
    runs_dir = ctx.cfg.paths.runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    reg = ctx.registry
    exp_id = reg.experiment_id(ctx.cfg.registry.training_experiment)
    params: dict[str, Any] = {
        "model": tc.model, "epochs": tc.epochs, "imgsz": tc.imgsz, "batch": tc.batch, "seed": tc.seed,
        "device": ctx.settings.device, **tc.hyperparameters,
    }
    t0 = time.time()
    with translate_errors():
        run = mlflow.start_run(experiment_id=exp_id, run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}")
    run_id = run.info.run_id
    status = "FAILED"
    try:
        with translate_errors():
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.set_tags({"pfp.split_fingerprint": manifest["fingerprint"], "pfp.model_name": ctx.model_name,
                             "pfp.registered_by": who(), **{f"pfp.{k}": v for k, v in git_state().items()}})

        def on_epoch(epoch: int, metrics: dict[str, float], trainer: Any) -> None:
            with translate_errors():
                mlflow.log_metrics({f"valid_{k}": v for k, v in metrics.items()}, step=epoch)
                mlflow.log_metrics(yolo.train_losses(trainer), step=epoch)
            ctx.say(f"epoch {epoch}/{tc.epochs}  valid mAP50 {metrics.get('map50', float('nan')):.4f}")

        out = yolo.train(
            model_yaml=tc.model, data_yaml=manifest["data_yaml"], project=runs_dir, name="train",
            epochs=tc.epochs, imgsz=tc.imgsz, batch=tc.batch, workers=tc.workers, seed=tc.seed,
            patience=tc.patience, device=ctx.settings.device, amp=tc.amp, hyperparameters=dict(tc.hyperparameters),
            on_epoch=on_epoch,
        )
        best = runs_dir / "best.pt"
        shutil.copyfile(out.best, best)
        duration = time.time() - t0
        info = {
            "run_id": run_id,
            "weights": str(best),
            "split_fingerprint": manifest["fingerprint"],
            "data_yaml": manifest["data_yaml"],
            "valid_metrics": out.valid_metrics,
            "params": params,
            "epochs": out.epochs_run,
            "duration_s": round(duration, 2),
            "runtime": yolo.runtime_versions(),
            "model_name": ctx.model_name,
            "class_names": list(ctx.cfg.data.classes),
            "study": None,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        info_path = runs_dir / TRAINING_INFO
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        with translate_errors():
            mlflow.log_metrics({f"final_valid_{k}": v for k, v in out.valid_metrics.items()})
            mlflow.log_artifact(str(best), artifact_path="weights")
            results_csv = out.save_dir / "results.csv"
            if results_csv.exists():
                mlflow.log_artifact(str(results_csv))
            mlflow.log_artifact(str(info_path))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        with translate_errors():
            mlflow.end_run(status=status)
    return TrainResult(run_id=run_id, weights=str(best), training_info=str(info_path),
                       valid_metrics=out.valid_metrics, params=params, split_fingerprint=manifest["fingerprint"],
                       epochs=out.epochs_run, duration_s=round(duration, 2))
