"""The registry port: what the services need from a model registry, and nothing of how MLflow does it.

Two implementations with the same semantics, held to them by one contract suite
(`tests/contract/test_registry_contract.py`):

* `pfp_mlops.adapters.mlflow_registry.Registry` — MLflow tracking + Model Registry (SQLite, a server, S3 artifacts);
* `pfp_mlops.adapters.memory_registry.MemoryRegistry` — an in-memory twin for fast tests and notebooks.

Semantics every implementation keeps:

* Version numbers are `int` (whatever the store returns) and start at 1 per model; versions are never deleted.
* `move_alias` is compare-and-set: it moves only when the alias still points at `expected`, else it raises
  `ConcurrentPromotion` and changes nothing. Two processes that read the same holder cannot both move it.
* Errors are pfp's own: an unknown model/version is `NotFoundError`, bad arguments `UserError`, an unreachable
  store `InfraError` (exit 3).
* The ledger is a list of entries (dicts of strings plus `metrics`), ordered by the time they were appended. An
  entry is appended `pending` or `complete`; a pending one is later finished as `complete` or `aborted`. Aborted
  entries disappear from `ledger()` (the lifecycle engine aborts only entries whose writes it fully undid).

Only `services/lifecycle.py` may call `move_alias`, `set_tags` with a `stage` key, or the ledger writers
(`append_ledger`, `finish_ledger`); a unit test greps for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pfp_mlops.domain.errors import UserError
from pfp_mlops.domain.models import ModelVersionInfo


def version_number(v: int | str) -> int:
    """A version as every implementation takes it: a positive integer, or its decimal string (REST gives strings)."""
    try:
        n = int(str(v))
    except ValueError:
        raise UserError(f"model version must be a positive integer (got {v!r})") from None
    if n < 1:
        raise UserError(f"model version must be a positive integer (got {v!r})")
    return n


def tag_value(v: Any) -> str:
    """Tags are strings in every implementation: non-strings as JSON, cut at 5000 characters (MLflow allows 8000)."""
    if isinstance(v, str):
        return v[:5000]
    return json.dumps(v, default=str)[:5000]

LedgerStatus = Literal["pending", "complete", "aborted"]
# The ledger entry key that carries the status ("complete" when missing: entries written before the engine).
STATUS_KEY = "status"


@runtime_checkable
class RegistryPort(Protocol):
    """Registered models, versions, aliases, tags, the lifecycle ledger, evidence runs and artifacts."""

    # --- the store ---
    def ping(self) -> None:
        """Raise InfraError when the store cannot be reached (used by `pfp doctor` and start-up checks)."""

    def experiment_id(self, name: str) -> str:
        """The id of the experiment (a folder of runs) of that name, created when missing (also concurrently)."""

    # --- registered models and versions ---
    def ensure_model(self, name: str) -> None:
        """Create the registered model when it does not exist; a no-op (also under a concurrent create) when it does."""

    def model_exists(self, name: str) -> bool:
        """Whether a registered model of that name exists (one read)."""

    def register(self, name: str, model_uri: str, run_id: str | None, tags: dict[str, str]) -> int:
        """A new version of `name` (created when missing) from a logged model, with its tags; returns its number
        once the store reports it ready (UserError when the store failed the registration)."""

    def version(self, name: str, version: int | str) -> ModelVersionInfo:
        """One version with its tags (aliases may be empty: not every store returns them here).
        UserError for a version that is not a positive integer, NotFoundError for an unknown one."""

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of `name`, oldest first, each with its aliases (NotFoundError for an unknown model)."""

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of `name` and the version it points at, in one read ({} for an unknown model)."""

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version `alias` points at, or None (also for an unknown model)."""

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None) -> None:
        """Compare-and-set: point `alias` at `version` (None deletes it) only if it still points at `expected`.
        Raises ConcurrentPromotion, changing nothing, when it does not or when another process is moving it."""

    def set_tags(self, name: str, version: int, tags: dict[str, Any]) -> None:
        """Set tags on one version (non-strings are stored as JSON, values cut at 5000 characters)."""

    def model_tags(self, name: str) -> dict[str, str]:
        """The registered model's own tags (e.g. the alias epochs of the compare-and-set)."""

    # --- the lifecycle ledger ---
    def append_ledger(self, entry: dict[str, Any], *, status: LedgerStatus = "complete") -> str:
        """Append one entry (keys → strings; `metrics` → numbers) with that status; returns its id (a run id)."""

    def finish_ledger(self, run_id: str, status: LedgerStatus) -> None:
        """Mark a pending entry `complete`, or `aborted` (it then no longer appears in `ledger()`)."""

    def annotate_ledger(self, run_id: str, tags: dict[str, Any]) -> None:
        """Add facts to an existing entry (e.g. a serving confirmation); existing keys are overwritten, the status
        is not touched (`status` is refused: use finish_ledger)."""

    def ledger(self, model: str, limit: int = 1000, *, status: LedgerStatus | None = None) -> list[dict[str, Any]]:
        """The entries of one model, oldest first (at most `limit`, the newest ones), each with `run_id`,
        `start_time` (ms), `status` and `metrics`; aborted entries left out. `status="pending"`: only those (a
        filtered query: the engine asks before every change, so it must not read the whole ledger)."""

    # --- evidence runs and artifacts ---
    def create_finished_run(self, experiment: str, name: str, tags: dict[str, Any],
                            metrics: dict[str, Any] | None = None) -> str:
        """A finished run holding evidence (files attached later with `log_run_artifact`); returns its id."""

    def log_run_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> str:
        """Attach a file to a (finished) run under `artifact_path`; returns its `runs:/<id>/<path>/<file>` URI."""

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of a run (NotFoundError for an unknown one)."""

    def download(self, uri: str, dst: Path) -> Path:
        """Download `runs:/…` or `models:/<name>/<version>` into `dst` (created); returns the local path
        (a file for a file URI, else the folder). NotFoundError when there is nothing at that URI."""


def entry_status(entry: dict[str, Any]) -> str:
    """The status of a ledger entry; entries written before the lifecycle engine count as complete."""
    return str(entry.get(STATUS_KEY) or "complete")
