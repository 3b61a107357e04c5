"""The MLflow implementation of the registry port (`pfp_mlops.ports.RegistryPort`).

Split along its responsibilities: error translation and tag encoding (`mlflow_common`), the alias compare-and-set
(`mlflow_aliases`), the ledger (`mlflow_ledger`), experiments/evidence runs/artifacts (`mlflow_runs`); this module
holds the connection and the registered models and versions. Version numbers are ints here whatever the store
returns (SQLite gives int, REST gives str).
"""

from __future__ import annotations

import os
import time
from typing import Any

from pfp_mlops.adapters.mlflow_aliases import CLAIM_PREFIX, CLAIM_STALE_S, EPOCH_TAG, AliasCAS
from pfp_mlops.adapters.mlflow_common import error_code, http_failure, translate_errors, translated
from pfp_mlops.adapters.mlflow_ledger import LEDGER_ACTION_TAG, LedgerStore
from pfp_mlops.adapters.mlflow_runs import RunStore
from pfp_mlops.domain.errors import NotFoundError, UserError
from pfp_mlops.domain.models import ModelVersionInfo
from pfp_mlops.ports import tag_value, version_number
from pfp_mlops.settings import Settings
from pfp_mlops.uris import public_uri

__all__ = ["CLAIM_PREFIX", "CLAIM_STALE_S", "EPOCH_TAG", "LEDGER_ACTION_TAG", "Registry", "export_connection_env",
           "http_failure", "public_uri", "translate_errors"]


def export_connection_env(settings: Settings) -> None:
    """MLflow and boto3 read credentials from os.environ; settings may come from `.env`, so export them.

    The tracking URI is not exported: it is passed explicitly, so an embedded default never leaks into a later
    Settings as if the user had configured a server.
    """
    pairs = {
        "MLFLOW_S3_ENDPOINT_URL": settings.mlflow_s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key.get_secret_value()
        if settings.aws_secret_access_key else None,
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_tracking_username,
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow_tracking_password.get_secret_value()
        if settings.mlflow_tracking_password else None,
    }
    for k, v in pairs.items():
        if v:
            os.environ[k] = v


class Registry(AliasCAS, LedgerStore, RunStore):
    """Tracking runs, registered models, aliases, tags and the lifecycle ledger on one MLflow store."""

    def __init__(self, settings: Settings, *, lifecycle_experiment: str = "pfp-lifecycle") -> None:
        export_connection_env(settings)
        import mlflow
        from mlflow import MlflowClient

        self.settings = settings
        self.uri = settings.tracking_uri()
        if settings.is_embedded():
            settings.resolved_home().mkdir(parents=True, exist_ok=True)
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        # MLflow 3 also writes these into os.environ; undo that so the embedded default is never mistaken for a
        # configured server by a later Settings in the same process (tests, run-all).
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.lifecycle_experiment = lifecycle_experiment

    # --- registered models ---
    @translated
    def ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as e:
            if error_code(e) != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(name, description="Managed by pfp-mlops")
            except MlflowException as e2:
                if error_code(e2) != "RESOURCE_ALREADY_EXISTS":
                    raise

    @translated
    def model_exists(self, name: str) -> bool:
        return self._registered_model(name) is not None

    def _registered_model(self, name: str) -> Any | None:
        """The registered model (one read), or None when there is none of that name."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as e:
            if error_code(e) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    @translated
    def model_tags(self, name: str) -> dict[str, str]:
        return dict(self.client.get_registered_model(name).tags or {})

    # --- versions ---
    @translated
    def register(self, name: str, model_uri: str, run_id: str | None, tags: dict[str, str]) -> int:
        self.ensure_model(name)
        # A REST server requires the logged model's id with a `models:/m-…` source (SQLite does not check it).
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        mv = self.client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
        version = int(mv.version)
        for _ in range(60):  # file/SQL stores are READY at once; a server may copy artifacts first
            status = self.client.get_model_version(name, str(version)).status
            if status == "READY":
                break
            if status == "FAILED_REGISTRATION":
                raise UserError(f"registration of {name} v{version} failed in MLflow")
            time.sleep(0.5)
        return version

    @translated
    def version(self, name: str, version: int | str) -> ModelVersionInfo:
        v = version_number(version)
        mv = self.client.get_model_version(name, str(v))
        return _info(mv)

    @translated
    def versions(self, name: str) -> list[ModelVersionInfo]:
        rm = self._registered_model(name)
        if rm is None:
            raise NotFoundError(f"registered model {name!r} not found in {public_uri(self.uri)}")
        aliases: dict[int, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            aliases.setdefault(int(v), []).append(alias)
        out = []
        for mv in self.client.search_model_versions(f"name = '{name}'", max_results=10000):
            info = _info(mv)
            out.append(ModelVersionInfo(info.name, info.version, info.stage, sorted(aliases.get(info.version, [])),
                                        info.tags, info.run_id, info.source))
        return sorted(out, key=lambda i: i.version)

    @translated
    def set_tags(self, name: str, version: int, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(name, str(version), k, tag_value(v))




def _info(mv: Any) -> ModelVersionInfo:
    tags = dict(mv.tags or {})
    return ModelVersionInfo(
        name=mv.name,
        version=int(mv.version),
        stage=tags.get("stage"),
        aliases=sorted(getattr(mv, "aliases", None) or []),
        tags=tags,
        run_id=mv.run_id,
        source=mv.source,
    )
