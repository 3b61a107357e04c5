"""MLflow tracking of a training: a parent run per `pfp train`, one child run per trial.

Runs are created and ended through `MlflowClient` by id, never through the fluent active-run stack, so an
exception anywhere (a crash, Ctrl-C, a pruned trial) cannot leave an active run behind: every run this module
starts is ended by the caller with an explicit status (FINISHED, FAILED or KILLED).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pfp_mlops.adapters.mlflow_registry import translate_errors
from pfp_mlops.domain.errors import InfraError

log = logging.getLogger("pfp.tracking")

_PARAM_MAX = 6000  # MLflow's param value limit (older servers: 500); longer values go to an artifact instead


def _rides_outages(method: Callable[..., Any]) -> Callable[..., Any]:
    """Retry on an unreachable or failing MLflow (InfraError) for `retry_s` (0: fail at once, the default): a
    worker of a shared study rides through a server or database restart instead of losing its trial."""

    @functools.wraps(method)
    def wrapper(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.retry_s
        delay = 1.0
        while True:
            try:
                return method(self, *args, **kwargs)
            except InfraError as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; retrying in %.0fs", e.message[:200], delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    return wrapper


class Tracker:
    def __init__(self, client: Any, experiment_id: str, *, retry_s: float = 0.0) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.retry_s = retry_s

    @_rides_outages
    def start(self, name: str, *, parent_id: str | None = None, tags: dict[str, Any] | None = None) -> str:
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        all_tags["mlflow.runName"] = name
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        with translate_errors():
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        return run.info.run_id

    @_rides_outages
    def log(self, run_id: str, *, metrics: dict[str, float] | None = None, tags: dict[str, Any] | None = None,
            step: int = 0, steps: list[tuple[str, float, int]] | None = None) -> None:
        """Metrics (at `step`, plus (key, value, step) triples) and tags in one call: one store transaction."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if _ok(v)]
        items += [Metric(k, float(v), now, st) for k, v, st in (steps or []) if _ok(v)]
        tag_items = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        with translate_errors():
            for i in range(0, max(len(items), 1), 1000):
                chunk = items[i:i + 1000]
                if chunk or (i == 0 and tag_items):
                    self.client.log_batch(run_id, metrics=chunk, tags=tag_items if i == 0 else [])

    @_rides_outages
    def params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:_PARAM_MAX]) for k, v in params.items()]
        with translate_errors():
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i:i + 100])

    def new_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Params not yet on the run (MLflow refuses to change one): a re-used study parent keeps its first."""
        with translate_errors():
            have = self.client.get_run(run_id).data.params
        self.params(run_id, {k: v for k, v in params.items() if str(k)[:250] not in have})

    def metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        self.log(run_id, metrics=metrics, step=step)

    @_rides_outages
    def tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        with translate_errors():
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def dataset_input(self, run_id: str, *, name: str, digest: str, source: str, profile: dict[str, Any],
                      context: str = "training") -> None:
        """MLflow's dataset-input convention (`mlflow.log_input`): the run's data, named, with a digest."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(name=name[:500], digest=digest[:36], source_type="local", source=source,
                     profile=json.dumps(profile, default=str))
        with translate_errors():
            self.client.log_inputs(run_id, datasets=[DatasetInput(ds, [InputTag("mlflow.data.context", context)])])

    @_rides_outages
    def artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        with translate_errors():
            self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    @_rides_outages
    def download(self, run_id: str, artifact_path: str, dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        with translate_errors():
            return Path(self.client.download_artifacts(run_id, artifact_path, str(dst)))

    @_rides_outages
    def end(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        with translate_errors():
            self.client.set_terminated(run_id, status=status)

    def children(self, parent_id: str) -> list[Any]:
        with translate_errors():
            return self.client.search_runs([self.experiment_id],
                                           filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def _ok(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def run_status(client: Any, run_id: str) -> str | None:
    """RUNNING/FINISHED/FAILED/KILLED, or None for a run this store does not have (or has deleted)."""
    from pfp_mlops.domain.errors import NotFoundError

    try:
        with translate_errors():
            run = client.get_run(run_id)
    except NotFoundError:  # another store's id, or removed by hand
        return None
    return None if run.info.lifecycle_stage == "deleted" else run.info.status


def reopen(client: Any, run_id: str) -> None:
    """A finished parent run receives trials again (another worker or `pfp train` joined its study)."""
    with translate_errors():
        client.update_run(run_id, status="RUNNING")


def delete(client: Any, run_id: str) -> None:
    with translate_errors():
        client.delete_run(run_id)


def running_trial_runs(client: Any, experiment_id: str, study_name: str) -> list[Any]:
    """The RUNNING trial child runs of a study (the reaper compares them with the Optuna trials)."""
    safe = study_name.replace("'", "")
    with translate_errors():
        return client.search_runs([experiment_id], max_results=1000, filter_string=(
            f"tags.`pfp.study_name` = '{safe}' AND tags.`pfp.role` = 'trial' AND attributes.status = 'RUNNING'"))
