"""The lifecycle ledger on MLflow: one run per entry in the lifecycle experiment (a mixin of `Registry`).

An entry's fields are the run's `pfp.<key>` tags and its metrics. Status: `pending` is a RUNNING run tagged
`pfp.status=pending`; `complete` a FINISHED one; `aborted` a KILLED run that is then deleted (MLflow keeps deleted
runs until `mlflow gc`, so the record of the lost attempt survives for an auditor, but no reader counts it).
"""

from __future__ import annotations

from typing import Any

from pfp_mlops.adapters.mlflow_common import translated
from pfp_mlops.domain.errors import UserError
from pfp_mlops.ports import STATUS_KEY, LedgerStatus, tag_value

LEDGER_ACTION_TAG = "pfp.action"
_RUN_STATUS = {"complete": "FINISHED", "aborted": "KILLED"}


class LedgerStore:
    """Needs `self.client`, `self.lifecycle_experiment`, and RunStore's `experiment_id`/`log_metrics`."""

    client: Any
    lifecycle_experiment: str

    @translated
    def append_ledger(self, entry: dict[str, Any], *, status: LedgerStatus = "complete") -> str:
        """One MLflow run per lifecycle action in the lifecycle experiment; returns the run id."""
        if status not in ("pending", "complete"):
            raise UserError(f"a ledger entry is appended pending or complete (got {status!r})")
        exp = self.experiment_id(self.lifecycle_experiment)  # type: ignore[attr-defined]
        tags = {f"pfp.{k}": tag_value(v) for k, v in entry.items() if k not in ("metrics", STATUS_KEY)
                and v is not None}
        tags[f"pfp.{STATUS_KEY}"] = status
        tags[LEDGER_ACTION_TAG] = str(entry["action"])
        tags["mlflow.runName"] = f"{entry['action']}:{entry.get('model')}:{entry.get('to_version')}"
        run = self.client.create_run(exp, tags=tags)
        self.log_metrics(run.info.run_id, entry.get("metrics") or {})  # type: ignore[attr-defined]
        if status == "complete":
            self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    @translated
    def finish_ledger(self, run_id: str, status: LedgerStatus) -> None:
        if status not in _RUN_STATUS:
            raise UserError(f"a ledger entry is finished complete or aborted (got {status!r})")
        self.client.set_tag(run_id, f"pfp.{STATUS_KEY}", status)
        self.client.set_terminated(run_id, _RUN_STATUS[status])
        if status == "aborted":
            self.client.delete_run(run_id)

    @translated
    def annotate_ledger(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        if STATUS_KEY in tags:
            raise UserError("annotate_ledger does not change an entry's status")
        self.client.get_run(run_id)  # NotFoundError for an unknown entry, before anything is written
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(f"pfp.{k}", tag_value(v)) for k, v in tags.items()])

    @translated
    def ledger(self, model: str, limit: int = 1000, *, status: LedgerStatus | None = None) -> list[dict[str, Any]]:
        """Lifecycle entries for one model, oldest first (deleted, i.e. aborted, runs are not searched)."""
        exp = self.client.get_experiment_by_name(self.lifecycle_experiment)
        if exp is None:
            return []
        where = f"tags.`pfp.model` = '{model}'"
        if status is not None:  # entries from before the engine have no status tag: they are all complete
            where += f" and tags.`pfp.{STATUS_KEY}` = '{status}'"
        runs = self.client.search_runs(
            [exp.experiment_id], filter_string=where, max_results=limit,
            order_by=["attributes.start_time DESC"],
        )
        out = []
        for r in runs:
            e: dict[str, Any] = {k[4:]: v for k, v in r.data.tags.items() if k.startswith("pfp.")}
            e.setdefault(STATUS_KEY, "complete")
            e["run_id"] = r.info.run_id
            e["start_time"] = r.info.start_time
            e["metrics"] = dict(r.data.metrics)
            out.append(e)
        out.sort(key=lambda e: (e["start_time"], e.get("seq", "")))
        return out
