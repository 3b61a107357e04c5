"""Ultralytics adapter: train from a model YAML, evaluate with one fixed protocol. The only module importing it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfp_mlops.domain.errors import DataError, PfpError, UserError
from pfp_mlops.domain.models import EvalResult
from pfp_mlops.runtime_env import configure_ultralytics

if TYPE_CHECKING:
    from pfp_mlops.domain.detection_metrics import PerImageRecords

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


def library_versions() -> dict[str, str]:
    """The versions that enter evaluation fingerprints, read from package metadata: no torch/ultralytics import.

    Same values as `runtime_versions()` minus CUDA, so a validate whose results are all cached (the usual case for
    the champion) never pays the ~4 s of importing torch and ultralytics.
    """
    from importlib import metadata

    def dist(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name).split("+")[0]
            except metadata.PackageNotFoundError:
                continue
        return None

    out = {"python": platform.python_version()}
    for key, names in (("torch", ("torch",)), ("ultralytics", ("ultralytics", "ultralytics-opencv-headless")),
                       ("torchvision", ("torchvision",))):
        v = dist(*names)
        if v is not None:
            out[key] = v
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
    plots: bool = False,
) -> TrainOutput:
    """Train one model; `on_epoch(epoch, metrics, trainer)` runs after each epoch's validation.

    To stop early (pruning, time budget) call `request_stop(trainer)` from `on_epoch`: Ultralytics then leaves its
    epoch loop, validates best.pt, saves and closes its data loaders like a normal end of training (raising from a
    callback instead would skip all of that). The final validation of best.pt is not reported to `on_epoch`; its
    metrics are the returned `valid_metrics`. With `plots`, only that final validation draws (PR curve, confusion
    matrix, results.png from results.csv): per-epoch plotting would cost every trial seconds for nothing.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    dev = resolve_device(device)
    model = YOLO(model_yaml) if model_yaml.endswith((".yaml", ".yml")) else YOLO(_local_pt(model_yaml))
    seen_epochs: list[int] = []

    def _on_start(trainer: Any) -> None:
        original = trainer.final_eval

        def final_eval() -> None:
            trainer._pfp_final = True
            if plots and not getattr(trainer, "_pfp_no_plots", False):
                trainer.args.plots = True  # read by final_eval (validator) and by plot_metrics right after
            original()

        trainer.final_eval = final_eval

    # pfp's own streams: `_quiet` silences Ultralytics during training, not pfp's progress lines from on_epoch.
    out_stream, err_stream = sys.stdout, sys.stderr

    def _cb(trainer: Any) -> None:
        if getattr(trainer, "_pfp_final", False):
            return
        epoch = int(trainer.epoch) + 1
        seen_epochs.append(epoch)
        if on_epoch is not None:
            with contextlib.redirect_stdout(out_stream), contextlib.redirect_stderr(err_stream):
                on_epoch(epoch, _valid_metrics(trainer.metrics), trainer)

    model.add_callback("on_train_start", _on_start)
    model.add_callback("on_fit_epoch_end", _cb)
    args = dict(
        data=data_yaml, epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=dev,
        seed=seed, deterministic=True, patience=patience, project=str(project), name=name, exist_ok=True,
        plots=False, verbose=False, amp=amp and dev not in ("cpu", "mps"), val=True, save=True,
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
    save_dir = Path(trainer.save_dir)
    metrics = _valid_metrics(trainer.metrics)
    epochs_run = int(getattr(trainer, "epoch", epochs - 1)) + 1
    if not seen_epochs:  # multi-GPU (DDP): training ran in a child process, callbacks never reached this one
        rows = read_results_csv(save_dir / "results.csv")
        epochs_run = len(rows) or epochs_run
        if not metrics and rows:
            metrics = max(rows, key=lambda r: 0.1 * r.get("map50", 0.0) + 0.9 * r.get("map50_95", 0.0))
            metrics = {k: v for k, v in metrics.items() if k in VALID_METRIC_KEYS.values()}
    return TrainOutput(best=best, last=last, save_dir=save_dir, epochs_run=epochs_run, valid_metrics=metrics,
                       stopped_early=epochs_run < epochs)


def request_stop(trainer: Any, *, plots: bool = True) -> None:
    """Ask Ultralytics to end training after this epoch, the clean way (see `train`)."""
    trainer.stop = True
    if not plots:
        trainer._pfp_no_plots = True


def read_results_csv(path: Path) -> list[dict[str, float]]:
    """Ultralytics' results.csv as one dict per epoch, with pfp's metric names where they exist."""
    import csv

    if not path.is_file():
        return []
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            clean: dict[str, float] = {}
            for k, v in row.items():
                k = (k or "").strip()
                try:
                    val = float(v)
                except (TypeError, ValueError):
                    continue
                clean[VALID_METRIC_KEYS.get(k, k.replace("/", "_").replace("(", "_").replace(")", ""))] = val
            out.append(clean)
    return out


def training_plots(save_dir: Path) -> list[Path]:
    """The PNG plots a training left in its folder (names vary between Ultralytics releases)."""
    return sorted(p for p in save_dir.glob("*.png") if p.is_file())


def release_memory() -> None:
    """After a crashed trial (out of memory above all): free what the dead trainer held before the next one."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass


def default_train_args() -> dict[str, Any]:
    """Ultralytics' defaults for every train argument (to check a search space's keys)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return dict(DEFAULT_CFG_DICT)


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


# Bump when the evaluator's arithmetic or inference call changes: every cached result then stops matching.
EVALUATOR = "pfp-predict/1"
MAX_DET = 300  # detections kept per image (Ultralytics' default for predict and val)


@dataclass(frozen=True, eq=False)
class SplitEvaluation:
    """One evaluation: the reported result, the per-image records it was computed from, and the image order."""

    result: EvalResult
    records: PerImageRecords
    images: list[str]  # record i describes images[i]; data-root-relative paths ("images/…/x.png")


def protocol_fingerprint(protocol: dict[str, Any], split_fingerprint: str) -> str:
    """Protocol settings + split fingerprint + evaluator + library versions: results are comparable only when equal."""
    payload = {"protocol": protocol, "split": split_fingerprint, "versions": library_versions(),
               "evaluator": EVALUATOR, "max_det": MAX_DET}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(weights: Path, **kwargs: Any) -> EvalResult:
    """The one evaluation protocol (see `evaluate_detailed`), result only."""
    return evaluate_detailed(weights, **kwargs).result


def evaluate_detailed(
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
    workdir: Path | None = None,
) -> SplitEvaluation:
    """The one evaluation protocol: `model.predict` on the split's images in sorted order, pfp's own matching.

    Predictions come from the call production makes (`predict`: one class per box, letterboxed at `imgsz`),
    with the protocol's confidence and NMS IoU thresholds and batch; ground truth from the YOLO label files.
    Every reported number derives from one set of matches (`detection_metrics.score_images`), and the per-image
    records at IoU 0.5 come back with it, so mAP50 can be recomputed and bootstrapped. Training-time or
    `model.val()` numbers are never used: val matches multi-label NMS output, which production never sees.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    from pfp_mlops.domain.detection_metrics import ImageDetections, score_images

    if not Path(weights).is_file():
        raise UserError(f"weights not found: {weights}")
    images = split_images(data_yaml, split)
    if not images:
        raise DataError(f"the {split} split of {data_yaml} has no images to evaluate on")
    dev = resolve_device(device)
    try:
        model = YOLO(str(weights))
    except Exception as e:
        raise UserError(f"cannot load weights {weights}: {type(e).__name__}: {str(e)[:200]}") from None
    n_classes = len(class_names)
    dets: list[ImageDetections] = []
    latency_ms = 0.0
    t0 = time.perf_counter()
    with _quiet():
        stream = model.predict(source=[str(p) for p in images], imgsz=imgsz, conf=conf, iou=iou, batch=batch,
                               device=dev, max_det=MAX_DET, half=False, verbose=False, save=False, stream=True)
        for path, res in zip(images, stream, strict=True):
            if Path(res.path).resolve() != path.resolve():  # stream order is the source order; make sure
                raise PfpError(f"evaluation order broken: expected {path}, got {res.path}")
            h, w = res.orig_shape[:2]
            boxes = res.boxes
            cls = boxes.cls.cpu().numpy().astype("int64")
            if cls.size and (cls.min() < 0 or cls.max() >= n_classes):
                raise UserError(f"{weights} predicts class id {int(cls.max())}, but data.classes has {n_classes} "
                                f"classes: the model was trained for other classes")
            gt_boxes, gt_cls = read_yolo_labels(path, width=w, height=h, n_classes=n_classes)
            dets.append(ImageDetections(pred_boxes=boxes.xyxy.cpu().numpy().astype("float64"), pred_classes=cls,
                                        pred_confs=boxes.conf.cpu().numpy().astype("float64"),
                                        gt_boxes=gt_boxes, gt_classes=gt_cls))
            latency_ms += float(sum((res.speed or {}).get(k) or 0.0
                                    for k in ("preprocess", "inference", "postprocess")))
    scores = score_images(dets, n_classes)
    log.debug("evaluated %s on %d %s images in %.2fs", weights, len(images), split, time.perf_counter() - t0)
    per_class = {name: float("nan") for name in class_names}  # NaN: no ground truth of the class in this split
    per_class.update({class_names[c]: ap for c, ap in scores.per_class_ap50.items()})
    protocol = {"imgsz": imgsz, "batch": batch, "conf": conf, "iou": iou, "split": split}
    result = EvalResult(
        map50=scores.map50, map50_95=scores.map50_95, precision=scores.precision, recall=scores.recall,
        per_class_ap50=per_class, latency_ms=latency_ms / len(images), n_images=len(images), split=split,
        split_fingerprint=split_fingerprint, protocol_fingerprint=protocol_fingerprint(protocol, split_fingerprint),
    )
    return SplitEvaluation(result=result, records=scores.records, images=[_data_relative(p) for p in images])


IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def split_images(data_yaml: str, split: str) -> list[Path]:
    """The split's images, sorted by path: the list file named in data.yaml (or `<split>.txt` beside it)."""
    import yaml

    yaml_path = Path(data_yaml)
    try:
        cfg = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"cannot read {data_yaml}: {type(e).__name__}") from None
    root = Path(cfg.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    entry = cfg.get({"valid": "val"}.get(split, split)) or f"{split}.txt"
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for e in entries:
        p = Path(e) if Path(e).is_absolute() else root / e
        if p.is_dir():
            out += [q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    out.append(q if q.is_absolute() else (p.parent / q).resolve())
        else:
            raise DataError(f"{data_yaml}: the {split} split {p} does not exist")
    return sorted(set(out), key=str)


def read_yolo_labels(image: Path, *, width: int, height: int, n_classes: int) -> tuple[Any, Any]:
    """Ground truth of one image in pixel xyxy, read like Ultralytics reads it (missing file: no objects).

    Rows are `class cx cy w h` (normalised) or `class x1 y1 x2 y2 …` polygons (their bounding box); duplicate
    rows count once, as in Ultralytics' label cache.
    """
    import numpy as np
    from ultralytics.data.utils import img2label_paths

    label = Path(img2label_paths([str(image)])[0])
    if not label.is_file():
        return np.zeros((0, 4)), np.zeros(0, dtype="int64")
    from pfp_mlops.domain.labels import UNREADABLE, parse_label_text

    # coordinates slightly outside [0, 1] are tolerated here as Ultralytics tolerates them; unreadable rows are not
    parsed, problems = parse_label_text(label.read_text(encoding="utf-8"), n_classes=n_classes, polygons=True)
    bad = next((p for p in problems if p.kind in UNREADABLE), None)
    if bad is not None:
        raise DataError(f"{label}:{bad.line}: {bad.message}")
    rows = [[b.cls, b.cx - b.w / 2, b.cy - b.h / 2, b.cx + b.w / 2, b.cy + b.h / 2] for b in parsed]
    if not rows:
        return np.zeros((0, 4)), np.zeros(0, dtype="int64")
    arr = np.unique(np.asarray(rows, dtype=np.float64), axis=0)
    boxes = arr[:, 1:] * np.array([width, height, width, height], dtype=np.float64)
    return boxes, arr[:, 0].astype("int64")


def _data_relative(path: Path) -> str:
    """`…/data/images/a/x.png` → `images/a/x.png` (the form the split manifest uses); else the path as is."""
    parts = path.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        return "/".join(parts[i:])
    return str(path)


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
