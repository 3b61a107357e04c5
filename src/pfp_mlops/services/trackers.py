"""The trackers of one training: MLflow first, mirrors after it (Weights & Biases, `train.trackers`).

The training service talks to one object with the MLflow tracker's methods (`start`, `params`, `metrics`, `log`,
`tags`, `artifact`, `end`, …). MLflow is the source of truth — the registry reads the training run — so its errors
stop the command as before. Each mirror gets the same calls keyed by the MLflow run id and decides what it keeps;
a mirror that fails (service down, bad key, quota) logs one warning line and is dropped for the rest of the
training, which completes and registers exactly as with MLflow alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pfp_mlops.domain.errors import PfpError

log = logging.getLogger("pfp.trackers")


class Mirror(Protocol):
    """A secondary tracker. `start` returns tags to record on MLflow runs (where the mirror keeps them), keyed by
    MLflow run id: the new run's, and its parent's when the mirror only now learns of that one."""

    name: str  # as in train.trackers, and the key in training_info.json
    label: str  # for people

    def start(self, run_id: str, name: str, *, parent_id: str | None,
              tags: dict[str, Any]) -> dict[str, dict[str, str]]: ...
    def params(self, run_id: str, params: dict[str, Any]) -> None: ...
    def log(self, run_id: str, *, metrics: dict[str, float], tags: dict[str, Any], step: int,
            steps: list[tuple[str, float, int]]) -> None: ...
    def artifact(self, run_id: str, path: Path, artifact_path: str | None) -> None: ...
    def end(self, run_id: str, status: str) -> None: ...
    def location(self) -> dict[str, Any]: ...
    def abort(self) -> None: ...


class Trackers:
    """MLflow's `Tracker` with mirrors: same methods, same return values (MLflow's run ids)."""

    def __init__(self, primary: Any, mirrors: list[Mirror] | None = None) -> None:
        self.primary = primary
        self.mirrors = list(mirrors or [])
        self.failed: dict[str, str] = {}  # name → the one-line reason it was dropped

    def __getattr__(self, name: str) -> Any:  # download, children, client, …: MLflow only
        return getattr(self.primary, name)

    def _mirror(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        out = []
        for m in list(self.mirrors):
            try:
                out.append(getattr(m, method)(*args, **kwargs))
            except Exception as e:  # noqa: BLE001 - a mirror never fails a training
                self._drop(m, e)
        return out

    def _drop(self, m: Mirror, e: BaseException) -> None:
        first = (e.message if isinstance(e, PfpError) else str(e)).strip().splitlines()
        reason = f"{type(e).__name__}: {first[0][:300]}" if first else type(e).__name__
        self.failed[m.name] = reason
        self.mirrors.remove(m)
        log.warning(f"{m.label}: {reason} — tracking goes on in MLflow only for this training")
        try:
            m.abort()
        except Exception:  # noqa: BLE001 - best effort: the mirror is already broken
            pass

    def start(self, name: str, *, parent_id: str | None = None, tags: dict[str, Any] | None = None) -> str:
        run_id = self.primary.start(name, parent_id=parent_id, tags=tags)
        extra: dict[str, dict[str, str]] = {}
        for by_run in self._mirror("start", run_id, name, parent_id=parent_id, tags=dict(tags or {})):
            for rid, t in (by_run or {}).items():
                extra.setdefault(rid, {}).update(t)
        for rid, t in extra.items():
            if t:
                self.primary.tags(rid, t)
        return run_id

    def params(self, run_id: str, params: dict[str, Any]) -> None:
        self.primary.params(run_id, params)
        self._mirror("params", run_id, params)

    def log(self, run_id: str, *, metrics: dict[str, float] | None = None, tags: dict[str, Any] | None = None,
            step: int = 0, steps: list[tuple[str, float, int]] | None = None) -> None:
        self.primary.log(run_id, metrics=metrics, tags=tags, step=step, steps=steps)
        self._mirror("log", run_id, metrics=dict(metrics or {}), tags=dict(tags or {}), step=step,
                     steps=list(steps or []))

    def metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        self.log(run_id, metrics=metrics, step=step)

    def tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.primary.tags(run_id, tags)
        self._mirror("log", run_id, metrics={}, tags=dict(tags), step=0, steps=[])

    def artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.primary.artifact(run_id, path, artifact_path)
        self._mirror("artifact", run_id, Path(path), artifact_path)

    def end(self, run_id: str, status: str) -> None:
        try:
            self._mirror("end", run_id, status)
        finally:
            self.primary.end(run_id, status)

    def info(self) -> dict[str, Any]:
        """For training_info.json: where each mirror keeps this training ({} with MLflow alone)."""
        out: dict[str, Any] = {}
        for m in self.mirrors:
            try:
                out[m.name] = m.location()
            except Exception as e:  # noqa: BLE001
                out[m.name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        for name, reason in self.failed.items():
            out[name] = {"error": reason}
        return out


def build(ctx: Any, make_primary: Callable[[], Any]) -> Trackers:
    """The configured trackers around MLflow's. Mirrors load first: one that cannot even be loaded (package
    missing, bad WANDB_MODE) is a config error (exit 2) before MLflow or the study storage is touched."""
    mirrors: list[Mirror] = []
    for name in ctx.cfg.train.trackers:
        if name == "wandb":
            from pfp_mlops.adapters.wandb_tracker import WandbMirror

            mirrors.append(WandbMirror(ctx.settings, ctx.cfg.train.wandb, model_name=ctx.model_name,
                                       runs_dir=ctx.cfg.paths.runs_dir.resolve()))
    return Trackers(make_primary(), mirrors)
