"""Experiments, evidence runs and artifacts on MLflow (a mixin of `mlflow_registry.Registry`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pfp_mlops.adapters.mlflow_common import translated
from pfp_mlops.ports import tag_value


class RunStore:
    """Needs `self.client` (an MlflowClient) and `self.settings` (for the artifact root of new experiments)."""

    client: Any
    settings: Any

    @translated
    def experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        loc = self.settings.artifact_root()
        try:
            return self.client.create_experiment(name, artifact_location=f"{loc}/{name}" if loc else None)
        except Exception:
            exp = self.client.get_experiment_by_name(name)  # created concurrently
            if exp is None:
                raise
            return exp.experiment_id

    @translated
    def ping(self) -> None:
        self.client.search_experiments(max_results=1)

    @translated
    def log_run_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> str:
        """Attach a file to an (even finished) run; returns its `runs:/` URI."""
        self.client.log_artifact(run_id, str(local_path), artifact_path)
        return f"runs:/{run_id}/{artifact_path}/{local_path.name}"

    @translated
    def create_finished_run(self, experiment: str, name: str, tags: dict[str, Any],
                            metrics: dict[str, Any] | None = None) -> str:
        """A run that holds evidence (attach files with `log_run_artifact`, which works on finished runs)."""
        run = self.client.create_run(self.experiment_id(experiment),
                                     tags={**{k: tag_value(v) for k, v in tags.items()}, "mlflow.runName": name})
        self.log_metrics(run.info.run_id, metrics or {})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Finite numbers only (NaN and booleans are left out), in one batch."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, 0) for k, v in metrics.items()
              if isinstance(v, int | float) and not isinstance(v, bool) and v == v]
        if ms:
            self.client.log_batch(run_id, metrics=ms)

    @translated
    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    @translated
    def download(self, uri: str, dst: Path) -> Path:
        import mlflow

        dst.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
