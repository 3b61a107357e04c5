"""Monitoring results in MLflow, so "the monitoring detects a drop via the MLflow API" is literal.

One run per (model, version) in the `pfp-monitoring` experiment (tags `pfp.model`, `pfp.version`), one step per
window: every signal and score is a metric at that step (the MLflow UI plots them over time), the window's details
are `windows/<step>-<window id>.json`, and `series.png` redraws the whole series. The tag `pfp.window.<step>` is
written in the same `log_batch` as the window's metrics: it is how a rerun after a crash recognises a window that
reached MLflow but not the local state file, so no window is ever logged twice.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from pfp_mlops.adapters.mlflow_registry import export_connection_env, translate_errors
from pfp_mlops.settings import Settings

WINDOW_TAG = "pfp.window."


class MonitorStore:
    def __init__(self, settings: Settings, experiment: str) -> None:
        export_connection_env(settings)
        from mlflow import MlflowClient

        uri = settings.tracking_uri()
        if settings.is_embedded():
            settings.resolved_home().mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.settings = settings
        self.experiment = experiment
        self._exp_id: str | None = None

    def experiment_id(self) -> str:
        if self._exp_id is None:
            with translate_errors():
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    loc = self.settings.artifact_root()
                    try:
                        self._exp_id = self.client.create_experiment(
                            self.experiment, artifact_location=f"{loc}/{self.experiment}" if loc else None)
                    except Exception:  # noqa: BLE001 - created concurrently
                        exp = self.client.get_experiment_by_name(self.experiment)
                        if exp is None:
                            raise
                        self._exp_id = exp.experiment_id
                else:
                    self._exp_id = exp.experiment_id
        return self._exp_id

    def find_run(self, model: str, version: int) -> str | None:
        with translate_errors():
            runs = self.client.search_runs(
                [self.experiment_id()],
                filter_string=f"tags.`pfp.model` = '{model}' and tags.`pfp.version` = '{version}'",
                order_by=["attributes.start_time ASC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def run_for(self, model: str, version: int) -> str:
        found = self.find_run(model, version)
        if found:
            return found
        with translate_errors():
            run = self.client.create_run(self.experiment_id(), run_name=f"monitor:{model}:v{version}",
                                         tags={"pfp.model": model, "pfp.version": str(version),
                                               "pfp.role": "monitor"})
        return run.info.run_id

    def logged_windows(self, run_id: str) -> dict[int, dict[str, Any]]:
        """step → the summary tagged with that window (windows that reached MLflow)."""
        with translate_errors():
            tags = self.client.get_run(run_id).data.tags
        out = {}
        for k, v in tags.items():
            if k.startswith(WINDOW_TAG):
                try:
                    out[int(k[len(WINDOW_TAG):])] = json.loads(v)
                except (ValueError, json.JSONDecodeError):
                    continue
        return out

    def log_window(self, run_id: str, step: int, metrics: dict[str, float], summary: dict[str, Any],
                   details: Path) -> None:
        """The details artifact first (harmless if repeated), then metrics + the window tag in one batch."""
        from mlflow.entities import Metric, RunTag

        with translate_errors():
            self.client.log_artifact(run_id, str(details), "windows")
            now = int(time.time() * 1000)
            items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                     if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
            text = json.dumps(summary, default=str)
            if len(text) > 5000:  # a tag's limit: the drift scores are metrics already; the rest must parse
                text = json.dumps({k: v for k, v in summary.items() if k != "drift"}, default=str)
            tag = RunTag(f"{WINDOW_TAG}{step}", text)
            last = RunTag("pfp.last_verdict", str(summary.get("verdict")))
            for i in range(0, max(len(items), 1), 900):
                chunk = items[i:i + 900]
                last_chunk = i + 900 >= len(items)
                self.client.log_batch(run_id, metrics=chunk, tags=[tag, last] if last_chunk else [])

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        with translate_errors():
            self.client.log_artifact(run_id, str(path), artifact_path)

    def download(self, run_id: str, artifact_path: str, dst: Path) -> Path | None:
        """An artifact of the run, or None when it is not there."""
        dst.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, artifact_path, str(dst)))
        except Exception:  # noqa: BLE001 - absent (or unreadable): the caller computes it
            return None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        with translate_errors():
            return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]
