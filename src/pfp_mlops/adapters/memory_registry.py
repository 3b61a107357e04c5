"""An in-memory registry with the semantics of the MLflow one (`pfp_mlops.ports.RegistryPort`).

For fast tests of the services and the lifecycle engine, and for notebooks that want to try the lifecycle without
a store. The contract suite (`tests/contract/test_registry_contract.py`) holds it to the same behaviour as the
MLflow adapter: int versions from 1, compare-and-set alias moves raising ConcurrentPromotion, ledger order and
status, NotFoundError/UserError where MLflow gives them. One lock makes every method atomic, so threads racing on
`move_alias` behave as processes racing on the epoch claim: exactly one wins.

`crash_after` lets a test crash at a chosen write: that many writes succeed, the next one raises `CrashHere`
(a process killed there). `calls` counts every method call by name.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import ConcurrentPromotion, NotFoundError, UserError
from pfp_mlops.domain.models import ModelVersionInfo
from pfp_mlops.ports import STATUS_KEY, LedgerStatus, tag_value, version_number


class CrashHere(BaseException):
    """Raised by a fault-injected write: a BaseException, like the SIGKILL it stands for, so no `except Exception`
    in the code under test can swallow it."""


class MemoryRegistry:
    """Everything in dicts; artifacts are copied into a private folder (`root`, a temp dir by default)."""

    def __init__(self, root: Path | None = None, *, lifecycle_experiment: str = "pfp-lifecycle") -> None:
        import tempfile

        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="pfp-memreg-"))
        self._lock = threading.RLock()
        self._models: dict[str, dict[str, Any]] = {}  # name -> {"aliases", "tags", "versions": {n: {...}}}
        self._experiments: dict[str, str] = {}
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> {"experiment", "tags", "metrics", "status", ...}
        self._clock = itertools.count()
        self.lifecycle_experiment = lifecycle_experiment
        self.crash_after: int | None = None
        self.writes = 0
        self.calls: dict[str, int] = {}

    # --- fault injection ---
    def _write(self, op: str) -> None:
        if self.crash_after is not None and self.writes >= self.crash_after:
            raise CrashHere(f"injected crash at write {self.writes + 1} ({op})")
        self.writes += 1
        self.calls[op] = self.calls.get(op, 0) + 1

    # --- the store ---
    def ping(self) -> None:
        return None

    def experiment_id(self, name: str) -> str:
        with self._lock:
            return self._experiments.setdefault(name, str(len(self._experiments) + 1))

    # --- registered models and versions ---
    def _model(self, name: str) -> dict[str, Any]:
        m = self._models.get(name)
        if m is None:
            raise NotFoundError(f"registered model {name!r} not found")
        return m

    def ensure_model(self, name: str) -> None:
        with self._lock:
            self._models.setdefault(name, {"aliases": {}, "tags": {}, "versions": {}})

    def model_exists(self, name: str) -> bool:
        return name in self._models

    def register(self, name: str, model_uri: str, run_id: str | None, tags: dict[str, str]) -> int:
        with self._lock:
            self._write("register")
            self.ensure_model(name)
            versions = self._models[name]["versions"]
            n = max(versions, default=0) + 1
            versions[n] = {"tags": {k: tag_value(v) for k, v in tags.items()}, "run_id": run_id,
                           "source": model_uri}
            return n

    def _version(self, name: str, version: int | str) -> tuple[int, dict[str, Any]]:
        n = version_number(version)
        v = self._model(name)["versions"].get(n)
        if v is None:
            raise NotFoundError(f"model version {name} v{n} not found")
        return n, v

    def _info(self, name: str, n: int, v: dict[str, Any], with_aliases: bool) -> ModelVersionInfo:
        tags = dict(v["tags"])
        aliases = sorted(a for a, h in self._models[name]["aliases"].items() if h == n) if with_aliases else []
        return ModelVersionInfo(name, n, tags.get("stage"), aliases, tags, v["run_id"], v["source"])

    def version(self, name: str, version: int | str) -> ModelVersionInfo:
        with self._lock:
            n, v = self._version(name, version)
            return self._info(name, n, v, with_aliases=True)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        with self._lock:
            m = self._model(name)
            return [self._info(name, n, v, with_aliases=True) for n, v in sorted(m["versions"].items())]

    def aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            m = self._models.get(name)
            return dict(m["aliases"]) if m else {}

    def alias_version(self, name: str, alias: str) -> int | None:
        return self.aliases(name).get(alias)

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None) -> None:
        with self._lock:
            m = self._model(name)
            current = m["aliases"].get(alias)
            if current != expected:
                raise ConcurrentPromotion(
                    f"alias {alias!r} of {name} moved to {current} since the decision (expected {expected}); "
                    f"nothing changed, run again")
            if version is not None:
                self._version(name, version)
            self._write("move_alias")
            epoch_tag = f"pfp.epoch.{alias}"
            m["tags"][epoch_tag] = str(int(m["tags"].get(epoch_tag, "0")) + 1)
            if version is None:
                m["aliases"].pop(alias, None)
            else:
                m["aliases"][alias] = int(version)

    def set_tags(self, name: str, version: int, tags: dict[str, Any]) -> None:
        with self._lock:
            _, v = self._version(name, version)
            for k, val in tags.items():  # one tag at a time, as MLflow does: a crash can land between two
                self._write("set_tags")
                v["tags"][k] = tag_value(val)

    def model_tags(self, name: str) -> dict[str, str]:
        with self._lock:
            return dict(self._model(name)["tags"])

    # --- the lifecycle ledger ---
    def _new_run(self, experiment: str, tags: dict[str, str], metrics: dict[str, Any], status: str) -> str:
        run_id = uuid.uuid4().hex
        self._runs[run_id] = {
            "experiment": self.experiment_id(experiment), "tags": tags, "status": status, "deleted": False,
            "metrics": {k: float(v) for k, v in metrics.items()
                        if isinstance(v, int | float) and not isinstance(v, bool) and v == v},
            "start_time": int(time.time() * 1000), "order": next(self._clock), "artifacts": {},
        }
        return run_id

    def append_ledger(self, entry: dict[str, Any], *, status: LedgerStatus = "complete") -> str:
        if status not in ("pending", "complete"):
            raise UserError(f"a ledger entry is appended pending or complete (got {status!r})")
        with self._lock:
            self._write("append_ledger")
            tags = {k: tag_value(v) for k, v in entry.items() if k not in ("metrics", STATUS_KEY) and v is not None}
            tags[STATUS_KEY] = status
            return self._new_run(self.lifecycle_experiment, tags, entry.get("metrics") or {},
                                 "FINISHED" if status == "complete" else "RUNNING")

    def _run(self, run_id: str) -> dict[str, Any]:
        r = self._runs.get(run_id)
        if r is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return r

    def finish_ledger(self, run_id: str, status: LedgerStatus) -> None:
        if status not in ("complete", "aborted"):
            raise UserError(f"a ledger entry is finished complete or aborted (got {status!r})")
        with self._lock:
            r = self._run(run_id)
            self._write("finish_ledger")
            r["tags"][STATUS_KEY] = status
            r["status"] = "FINISHED" if status == "complete" else "KILLED"
            r["deleted"] = status == "aborted"

    def annotate_ledger(self, run_id: str, tags: dict[str, Any]) -> None:
        if STATUS_KEY in tags:
            raise UserError("annotate_ledger does not change an entry's status")
        with self._lock:
            r = self._run(run_id)
            self._write("annotate_ledger")
            r["tags"].update({k: tag_value(v) for k, v in tags.items()})

    def ledger(self, model: str, limit: int = 1000, *, status: LedgerStatus | None = None) -> list[dict[str, Any]]:
        with self._lock:
            exp = self._experiments.get(self.lifecycle_experiment)
            runs = [(rid, r) for rid, r in self._runs.items()
                    if r["experiment"] == exp and not r["deleted"] and r["tags"].get("model") == model
                    and (status is None or r["tags"].get(STATUS_KEY) == status)]
            runs.sort(key=lambda x: x[1]["order"])
            out = []
            for rid, r in runs[-limit:] if limit > 0 else []:
                e: dict[str, Any] = dict(r["tags"])
                e.update(run_id=rid, start_time=r["start_time"], metrics=dict(r["metrics"]))
                out.append(e)
            return out

    # --- evidence runs and artifacts ---
    def create_finished_run(self, experiment: str, name: str, tags: dict[str, Any],
                            metrics: dict[str, Any] | None = None) -> str:
        with self._lock:
            self._write("create_finished_run")
            t = {k: tag_value(v) for k, v in tags.items()}
            t["mlflow.runName"] = name
            return self._new_run(experiment, t, metrics or {}, "FINISHED")

    def log_run_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> str:
        with self._lock:
            r = self._run(run_id)
            self._write("log_run_artifact")
            dst = self.root / "runs" / run_id / artifact_path / Path(local_path).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_path, dst)
            r["artifacts"][f"{artifact_path}/{Path(local_path).name}"] = dst
            return f"runs:/{run_id}/{artifact_path}/{Path(local_path).name}"

    def run_tags(self, run_id: str) -> dict[str, str]:
        with self._lock:
            return copy.deepcopy(self._run(run_id)["tags"])

    def download(self, uri: str, dst: Path) -> Path:
        """`runs:/<id>/<path>` (a logged file or folder) or `models:/<name>/<version>` (a local source folder)."""
        dst.mkdir(parents=True, exist_ok=True)
        if uri.startswith("runs:/"):
            run_id, _, path = uri.removeprefix("runs:/").partition("/")
            src = self.root / "runs" / run_id / path
            self._run(run_id)
        elif uri.startswith("models:/"):
            name, _, version = uri.removeprefix("models:/").partition("/")
            _, v = self._version(name, version)
            src = Path(v["source"])
            if src.is_dir():  # like MLflow: a model's artifacts land in dst itself
                shutil.copytree(src, dst, dirs_exist_ok=True)
                return dst
        else:
            raise UserError(f"cannot download {uri!r} from the in-memory registry")
        if not src.exists():
            raise NotFoundError(f"nothing at {uri}")
        if src.is_file():
            out = dst / src.name
            shutil.copyfile(src, out)
            return out
        out = dst / src.name
        shutil.copytree(src, out, dirs_exist_ok=True)
        return out
