"""Weights & Biases as a mirror of a training's MLflow runs (`train.trackers: [mlflow, wandb]`).

The only module importing wandb. One W&B run per MLflow run: the study's parent run (job type `study`) and every
trial (job type `trial`, or `retrain`) share the W&B group named after the Optuna study, so the W&B UI shows a
study the way MLflow nests it. Each W&B run gets the MLflow run's params as its config, the per-epoch metrics at
the same steps, the trial state (`trial_state` in the summary and a run tag: complete, pruned, fail), final
values in its summary (the study run's summary is the best trial's), and PNG plots as images. Weights and
CSV files stay in MLflow (the registry's source); W&B is for looking at the search.

Bounded: `wandb.init` waits at most `train.wandb.init_timeout_s`, `finish` at most `finish_timeout_s` (what is
not uploaded by then stays on disk for `wandb sync`). Errors are raised to `services.trackers`, which warns once
and drops the mirror. WANDB_API_KEY is read by the SDK from the environment and never passed, printed or stored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import ConfigError
from pfp_mlops.settings import Settings
from pfp_mlops.tracker_config import WandbConfig

INSTALL = "pip install 'pfp-mlops[wandb]'"
MODES = ("online", "offline", "disabled", "dryrun", "shared", "run")
_EXIT = {"FINISHED": 0, "FAILED": 1, "KILLED": 255}


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError(f"train.trackers includes wandb, but the wandb package is not installed: {INSTALL}") \
            from None
    return wandb


class WandbMirror:
    name = "wandb"
    label = "W&B"

    def __init__(self, settings: Settings, cfg: WandbConfig, *, model_name: str, runs_dir: Path) -> None:
        self.wandb = _import_wandb()
        # The SDK's own terminal lines (login, sync hints) off: a W&B problem is pfp's one warning line instead
        self.wandb.setup(settings=self.wandb.Settings(silent=True))
        mode = (settings.wandb_mode or "online").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"WANDB_MODE: expected online, offline or disabled (got {settings.wandb_mode!r})")
        self.mode = "offline" if mode == "dryrun" else mode
        self.project = settings.wandb_project or cfg.project or model_name
        self.entity = settings.wandb_entity or cfg.entity
        self.dir = (settings.wandb_dir or runs_dir).expanduser().resolve()
        self.cfg = cfg
        self.runs: dict[str, Any] = {}  # MLflow run id → W&B run
        self.last_step: dict[str, int] = {}
        self.roles: dict[str, str] = {}
        self.study: dict[str, Any] = {}

    # --- what the Mirror protocol asks ---
    def start(self, run_id: str, name: str, *, parent_id: str | None,
              tags: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Open the W&B run of a new MLflow run; returns {MLflow run id: tags} saying where W&B keeps each."""
        group = str(tags.get("pfp.study_name") or name)
        role = str(tags.get("pfp.role") or ("study" if parent_id is None else "trial"))
        out = {}
        if parent_id is not None and parent_id not in self.runs:
            # The study's parent run was created earlier (a resumed study, or another worker's): this process
            # gets its own W&B study run for it, in the same group.
            out[parent_id] = self._open(parent_id, f"{group}/resumed", None, "study", group, {})
        out[run_id] = self._open(run_id, name if role == "study" else f"{group}/{name}", parent_id, role, group, tags)
        return out

    def _open(self, run_id: str, name: str, parent_id: str | None, role: str, group: str,
              tags: dict[str, Any]) -> dict[str, str]:
        wandb = self.wandb
        config = {"mlflow_run_id": run_id, **({"mlflow_parent_run_id": parent_id} if parent_id else {}),
                  **{_key(k): v for k, v in tags.items()}}
        self.dir.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project, entity=self.entity, mode=self.mode, dir=str(self.dir), group=group, job_type=role,
            name=name, config=config, tags=[role], reinit="create_new",
            settings=wandb.Settings(init_timeout=self.cfg.init_timeout_s, login_timeout=self.cfg.init_timeout_s,
                                    finish_timeout=self.cfg.finish_timeout_s, silent=True, console="off",
                                    x_disable_stats=True, save_code=False, disable_job_creation=True),
        )
        self.runs[run_id] = run
        self.roles[run_id] = role
        self.last_step[run_id] = -1
        where = self._where(run)
        if role == "study":
            self.study = {"mode": self.mode, "project": self.project, "entity": run.entity or self.entity,
                          "group": group, "run_id": run.id, **where}
        return {f"pfp.wandb_{k}": v for k, v in {"run_id": run.id, "group": group, **where}.items()}

    def params(self, run_id: str, params: dict[str, Any]) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            run.config.update({str(k): _plain(v) for k, v in params.items()}, allow_val_change=True)

    def log(self, run_id: str, *, metrics: dict[str, float], tags: dict[str, Any], step: int,
            steps: list[tuple[str, float, int]]) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        metrics = {k: float(v) for k, v in metrics.items() if _finite(v)}
        if metrics:
            if step >= self.last_step[run_id]:  # a new (or the current) step: history, and the summary follows
                run.log(metrics, step=step)
                self.last_step[run_id] = step
            else:  # a final value logged at step 0 after the epochs: the summary (W&B steps only go forward)
                run.summary.update(metrics)
        by_step: dict[int, dict[str, float]] = {}
        for k, v, st in steps:
            if _finite(v):
                by_step.setdefault(int(st), {})[k] = float(v)
        for st in sorted(by_step):
            if st >= self.last_step[run_id]:
                run.log(by_step[st], step=st)
                self.last_step[run_id] = st
        if tags:
            run.summary.update({_key(k): _plain(v) for k, v in tags.items()})
            state = tags.get("pfp.trial_state")
            if state:
                run.tags = tuple(dict.fromkeys((*run.tags, str(state).lower())))

    def artifact(self, run_id: str, path: Path, artifact_path: str | None) -> None:
        run = self.runs.get(run_id)
        if run is None or path.suffix.lower() != ".png" or not path.is_file():
            return
        run.log({f"plots/{path.stem}": self.wandb.Image(str(path))}, step=max(self.last_step[run_id], 0))
        self.last_step[run_id] = max(self.last_step[run_id], 0)

    def end(self, run_id: str, status: str) -> None:
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        run.finish(exit_code=_EXIT.get(status, 1))
        if self.roles.get(run_id) == "study":  # a study run left open (its MLflow run lost a claim race): done too
            for other in [r for r in self.runs if self.roles.get(r) == "study"]:
                self.runs.pop(other).finish(exit_code=0)

    def location(self) -> dict[str, Any]:
        return dict(self.study) or {"mode": self.mode, "project": self.project, "run_id": None}

    def abort(self) -> None:
        for run_id in list(self.runs):
            run = self.runs.pop(run_id)
            try:
                run.finish(exit_code=1)
            except Exception:  # noqa: BLE001 - already failing
                pass

    # --- helpers ---
    def _where(self, run: Any) -> dict[str, str]:
        """The run's URL online, its local folder offline (upload it later with `wandb sync <dir>`)."""
        if self.mode == "offline" or getattr(run, "offline", False):
            return {"dir": str(Path(run.settings.sync_dir))}
        if self.mode == "disabled":
            return {}
        return {"url": str(run.url or "")}


def _key(tag: str) -> str:
    return tag.removeprefix("pfp.")


def _plain(v: Any) -> Any:
    return v if isinstance(v, bool | int | float | str) or v is None else str(v)


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
