"""Ultralytics adapter: train from a model YAML and evaluate with one fixed protocol. Only module importing ultralytics."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import DataError, PfpError, UserError
from pfp_mlops.domain.models import EvalResult
from pfp_mlops.runtime_env import configure_ultralytics

log = logging.getLogger("pfp.yolo")

VALID_METRIC_KEYS = {
    "metrics/mAP50(B)": "map50",
    "metrics/mAP50-95(B)": "map50_95",
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
}


@dataclass(frozen=True)
class TrainOutput:
    best: Path
    last: Path
    save_dir: Path
    epochs_run: int
    valid_metrics: dict[str, float]
    stopped_early: bool


def runtime_versions() -> dict[str, str]:
    """Versions that decide whether production can load the weights."""
    import torch
    import ultralytics

    out = {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
           "ultralytics": ultralytics.__version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__.split("+")[0]
    except ImportError:
        pass
    cuda = getattr(torch.version, "cuda", None)
    out["cuda"] = str(cuda) if cuda and torch.cuda.is_available() else "none"
    return out


def resolve_device(device: str) -> str:
    """`auto` → first GPU if any else cpu; anything else as given (validated by Settings)."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train(
    *,
    model_yaml: str,
    data_yaml: str,
    project: Path,
    name: str,
    epochs: int,
    imgsz: int,
    batch: int,
    workers: int,
    seed: int,
    patience: int,
    device: str,
    amp: bool,
    hyperparameters: dict[str, Any],
    on_epoch: Callable[[int, dict[str, float], Any], None] | None = None,
) -> TrainOutput:
    """Train one model; `on_epoch(epoch, metrics, trainer)` is called after each validation (may set trainer.stop)."""
    configure_ultralytics()
    from ultralytics import YOLO

    dev = resolve_device(device)
    model = YOLO(model_yaml) if model_yaml.endswith((".yaml", ".yml")) else YOLO(_local_pt(model_yaml))
    if on_epoch is not None:
        def _cb(trainer: Any) -> None:
            on_epoch(int(trainer.epoch) + 1, _valid_metrics(trainer.metrics), trainer)

        model.add_callback("on_fit_epoch_end", _cb)
    args = dict(
        data=data_yaml, epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=dev,
        seed=seed, deterministic=True, patience=patience, project=str(project), name=name, exist_ok=True,
        plots=False, verbose=False, amp=amp and dev != "cpu", val=True, save=True,
    )
    args.update(hyperparameters)
    try:
        with _quiet():
            model.train(**args)
    except SyntaxError as e:  # Ultralytics reports unknown/invalid arguments like this
        raise UserError(f"invalid training argument: {str(e).splitlines()[0][:300]}") from None
    except FileNotFoundError as e:
        raise DataError(f"training data not found: {str(e).splitlines()[0][:300]}") from None
    trainer = model.trainer
    best, last = Path(trainer.best), Path(trainer.last)
    if not best.exists():
        best = last
    epochs_run = int(getattr(trainer, "epoch", epochs - 1)) + 1
    return TrainOutput(best=best, last=last, save_dir=Path(trainer.save_dir), epochs_run=epochs_run,
                       valid_metrics=_valid_metrics(trainer.metrics),
                       stopped_early=epochs_run < epochs)


def train_losses(trainer: Any) -> dict[str, float]:
    """Mean training losses of the epoch, named like MLflow metrics (train_box_loss, …)."""
    try:
        items = trainer.label_loss_items(trainer.tloss, prefix="train")
    except Exception:  # noqa: BLE001 - losses are informative only; older/newer trainers differ
        return {}
    return {k.replace("/", "_"): float(v) for k, v in (items or {}).items()} if isinstance(items, dict) else {}


def _local_pt(path: str) -> str:
    if not Path(path).is_file():
        raise UserError(f"train.model {path!r} is not a local file; use a model YAML (e.g. yolov8n.yaml) offline")
    return path


def _valid_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    out = {}
    for k, v in (metrics or {}).items():
        if k in VALID_METRIC_KEYS:
            out[VALID_METRIC_KEYS[k]] = float(v)
    return out


def protocol_fingerprint(protocol: dict[str, Any], split_fingerprint: str) -> str:
    """Protocol settings + split fingerprint + library versions: results are comparable only when equal."""
    payload = {"protocol": protocol, "split": split_fingerprint, "versions": runtime_versions()}
    payload["versions"].pop("cuda", None)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(
    weights: Path,
    *,
    data_yaml: str,
    split: str,
    split_fingerprint: str,
    class_names: list[str],
    imgsz: int,
    batch: int,
    conf: float,
    iou: float,
    device: str,
    workdir: Path,
) -> EvalResult:
    """The one evaluation protocol: fixed size, batch, thresholds, deterministic order, rect=False."""
    configure_ultralytics()
    from ultralytics import YOLO

    if not Path(weights).is_file():
        raise UserError(f"weights not found: {weights}")
    dev = resolve_device(device)
    try:
        model = YOLO(str(weights))
    except Exception as e:
        raise UserError(f"cannot load weights {weights}: {type(e).__name__}: {str(e)[:200]}") from None
    split_arg = {"valid": "val"}.get(split, split)
    t0 = time.perf_counter()
    with _quiet():
        m = model.val(data=data_yaml, split=split_arg, imgsz=imgsz, batch=batch, conf=conf, iou=iou,
                      device=dev, workers=0, plots=False, verbose=False, rect=False, save_json=False,
                      project=str(workdir), name="eval", exist_ok=True, half=False)
    elapsed = time.perf_counter() - t0
    box = m.box
    per_class = {class_names[int(c)]: float(ap) for c, ap in zip(box.ap_class_index, box.ap50, strict=False)}
    for name in class_names:
        per_class.setdefault(name, float("nan"))
    speed = getattr(m, "speed", {}) or {}
    latency = float(sum(speed.get(k, 0.0) for k in ("preprocess", "inference", "postprocess")))
    n_images = _count_lines(data_yaml, split)
    protocol = {"imgsz": imgsz, "batch": batch, "conf": conf, "iou": iou, "split": split}
    log.debug("evaluated %s on %s in %.2fs", weights, split, elapsed)
    return EvalResult(
        map50=float(box.map50), map50_95=float(box.map), precision=float(box.mp), recall=float(box.mr),
        per_class_ap50=per_class, latency_ms=latency, n_images=n_images, split=split,
        split_fingerprint=split_fingerprint, protocol_fingerprint=protocol_fingerprint(protocol, split_fingerprint),
    )


def _count_lines(data_yaml: str, split: str) -> int:
    p = Path(data_yaml).parent / f"{split}.txt"
    try:
        return sum(1 for line in p.read_text().splitlines() if line.strip())
    except OSError:
        return 0


@contextlib.contextmanager
def _quiet():
    """Ultralytics prints progress bars to stderr; keep pfp's output to its own lines unless debugging."""
    if logging.getLogger("pfp").isEnabledFor(logging.DEBUG):
        yield
        return
    buf_out, buf_err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
            yield
    except PfpError:
        raise
    except Exception:
        tail = (buf_err.getvalue() or buf_out.getvalue())[-2000:]
        if tail:
            log.debug("ultralytics output before the error:\n%s", tail)
        raise
