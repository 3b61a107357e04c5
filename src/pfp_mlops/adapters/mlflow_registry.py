"""MLflow tracking + Model Registry adapter. The only module that says `except MlflowException`.

Version numbers are ints here whatever the store returns (SQLite gives int, REST gives str).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pfp_mlops.domain.errors import ConcurrentPromotion, InfraError, NotFoundError, PfpError, UserError
from pfp_mlops.domain.models import ModelVersionInfo
from pfp_mlops.settings import Settings

T = TypeVar("T")
LEDGER_ACTION_TAG = "pfp.action"
EPOCH_TAG = "pfp.epoch."
CLAIM_PREFIX = "pfp-claim:"
CLAIM_STALE_S = 120.0


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


def _translate(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn MLflow, HTTP and database errors into pfp's own."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with translate_errors():
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except PfpError:
        raise
    except MlflowException as e:
        code = getattr(e, "error_code", "")
        msg = str(e.message if hasattr(e, "message") else e).splitlines()[0][:300]
        if code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(msg) from None
        if code in ("INVALID_PARAMETER_VALUE", "INVALID_STATE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"):
            raise UserError(msg) from None
        if _looks_unreachable(msg) or code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "ENDPOINT_NOT_FOUND"):
            full = str(e.message if hasattr(e, "message") else e)
            raise InfraError(f"MLflow unreachable or failing at {_uri()}: {http_failure(full) or msg}") from None
        raise InfraError(f"MLflow error ({code or 'unknown'}): {msg}") from None
    except (ConnectionError, TimeoutError, OSError) as e:
        raise InfraError(f"MLflow unreachable at {_uri()}: {e.__class__.__name__}: {str(e)[:200]}") from None
    except Exception as e:  # requests / sqlalchemy / botocore errors without importing them eagerly
        name = type(e).__module__ + "." + type(e).__name__
        if any(k in name for k in ("requests", "urllib3", "sqlalchemy", "botocore", "boto3", "psycopg")):
            first = str(e).splitlines()[0][:200] if str(e) else ""
            raise InfraError(f"storage unreachable or failing ({type(e).__name__}): {first}") from None
        raise


_HTTP_CAUSES = (  # (signs in the requests/urllib3 message, what to tell the person at the terminal)
    (("read timed out", "readtimeouterror"), "no answer within {timeout} s (MLFLOW_HTTP_REQUEST_TIMEOUT): the server "
                                             "is hung or overloaded"),
    (("connecttimeouterror", "(connect timeout="), "connection timed out"),
    (("connection refused",), "connection refused: nothing listens there"),
    (("name or service not known", "nameresolutionerror", "failed to resolve", "temporary failure in name resolution"),
     "host name not resolved"),
    (("connection reset", "remotedisconnected", "connection aborted", "protocolerror"),
     "the connection was dropped by the server"),
    (("too many 5", "responseerror", "error code 5", "status code 5"), "the server keeps answering with errors (5xx)"),
)


def http_failure(message: str) -> str | None:
    """One short line for an MLflow REST failure: the cause and the endpoint, instead of urllib3's 400 characters
    (whose first 300 never reach the cause). None when the message is not one of the known transport failures."""
    import re

    m = message.lower()
    for signs, text in _HTTP_CAUSES:
        if any(sign in m for sign in signs):
            endpoint = re.search(r"/api/[\d.]+/mlflow/([\w/-]+)", message)
            timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
            where = f" (on {endpoint.group(1)})" if endpoint else ""
            return text.format(timeout=timeout) + where
    return None


def _looks_unreachable(msg: str) -> bool:
    m = msg.lower()
    return any(k in m for k in ("max retries", "connection refused", "failed to establish", "timed out",
                                "name or service not known", "503", "502", "504", "api request to endpoint"))


def _uri() -> str:
    return public_uri(os.environ.get("MLFLOW_TRACKING_URI", ""))


class Registry:
    """Tracking runs, registered models, aliases, tags and the lifecycle ledger on one MLflow store."""

    def __init__(self, settings: Settings, *, staging_alias: str = "staging", production_alias: str = "production",
                 lifecycle_experiment: str = "pfp-lifecycle") -> None:
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
        self.staging_alias = staging_alias
        self.production_alias = production_alias
        self.lifecycle_experiment = lifecycle_experiment

    # --- experiments and runs ---
    @_translate
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

    @_translate
    def ping(self) -> None:
        self.client.search_experiments(max_results=1)

    # --- registered models ---
    @_translate
    def ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as e:
            if getattr(e, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(name, description="Managed by pfp-mlops")
            except MlflowException as e2:
                if getattr(e2, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise

    @_translate
    def model_exists(self, name: str) -> bool:
        return self._registered_model(name) is not None

    def _registered_model(self, name: str) -> Any | None:
        """The registered model (one read), or None when there is none of that name."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    @_translate
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

    @_translate
    def version(self, name: str, version: int | str) -> ModelVersionInfo:
        v = _as_version(version)
        mv = self.client.get_model_version(name, str(v))
        return _info(mv)

    @_translate
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

    @_translate
    def alias_version(self, name: str, alias: str) -> int | None:
        rm = self._registered_model(name)
        if rm is None:
            return None
        v = (rm.aliases or {}).get(alias)
        return int(v) if v is not None else None

    @_translate
    def set_tags(self, name: str, version: int, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(name, str(version), k, _tag_value(v))

    @_translate
    def model_tags(self, name: str) -> dict[str, str]:
        return dict(self.client.get_registered_model(name).tags or {})

    @_translate
    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None) -> None:
        """Point `alias` at `version` (None deletes it) only if it still points at `expected` (compare-and-set).

        MLflow's alias API has no compare-and-set, and "read the alias, then set it" lets two processes that read
        the same value both win (re-reading after the set cannot tell them apart when both move it to the same
        version). So every move claims an epoch: the registered model carries tag `pfp.epoch.<alias>` = E, and a
        move first creates the (then soft-deleted) experiment `pfp-claim:<name>:<alias>:<E+1>`. Experiment names
        are unique in every MLflow store (a database constraint, also over REST), so exactly one of the processes
        that read epoch E can claim E+1; the others stop with ConcurrentPromotion and change nothing. The winner
        sets the alias, then the epoch tag. A process that reads after the winner's move sees the alias moved.
        A claim whose owner died before bumping the epoch is taken over after CLAIM_STALE_S seconds.
        """
        for _attempt in range(3):
            rm = self.client.get_registered_model(name)
            raw = (rm.aliases or {}).get(alias)
            current = int(raw) if raw is not None else None
            if current != expected:
                raise ConcurrentPromotion(
                    f"alias {alias!r} of {name} moved to {current} since the decision (expected {expected}); "
                    f"nothing changed, run again"
                )
            epoch = _int((rm.tags or {}).get(EPOCH_TAG + alias))
            claimed = self._claim(name, alias, epoch + 1)
            if claimed is None:
                break
            if not claimed:  # the owner of claim E+1 died before bumping the epoch: skip past it
                self.client.set_registered_model_tag(name, EPOCH_TAG + alias, str(epoch + 1))
                continue
            raise ConcurrentPromotion(
                f"alias {alias!r} of {name} is being moved by another process (epoch {epoch + 1} already claimed); "
                f"nothing changed, run again"
            )
        else:
            raise ConcurrentPromotion(f"alias {alias!r} of {name}: could not claim a move; nothing changed, run again")
        if version is None:
            self.client.delete_registered_model_alias(name, alias)
        else:
            self.client.set_registered_model_alias(name, alias, str(version))
        self.client.set_registered_model_tag(name, EPOCH_TAG + alias, str(epoch + 1))

    def _claim(self, name: str, alias: str, epoch: int) -> bool | None:
        """Claim one alias move. None: claimed by us. True: held by a live process. False: held by a dead one."""
        from mlflow.exceptions import MlflowException

        claim = f"{CLAIM_PREFIX}{name}:{alias}:{epoch}"
        try:
            exp_id = self.client.create_experiment(claim, tags={"pfp.claim_by": f"{os.getpid()}"})
        except MlflowException as e:
            if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = self.client.get_experiment_by_name(claim)
            age_s = time.time() - (exp.creation_time or 0) / 1000 if exp is not None else 0.0
            return age_s < CLAIM_STALE_S
        with contextlib.suppress(MlflowException):  # hide it from the UI; the name stays taken
            self.client.delete_experiment(exp_id)
        return None

    # --- artifacts ---
    @_translate
    def log_run_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> str:
        """Attach a file to an (even finished) run; returns its `runs:/` URI."""
        self.client.log_artifact(run_id, str(local_path), artifact_path)
        return f"runs:/{run_id}/{artifact_path}/{local_path.name}"

    @_translate
    def create_finished_run(self, experiment: str, name: str, tags: dict[str, Any],
                            metrics: dict[str, Any] | None = None) -> str:
        """A run that holds evidence (attach files with `log_run_artifact`, which works on finished runs)."""
        from mlflow.entities import Metric

        run = self.client.create_run(self.experiment_id(experiment),
                                     tags={**{k: _tag_value(v) for k, v in tags.items()}, "mlflow.runName": name})
        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()
              if isinstance(v, int | float) and not isinstance(v, bool) and v == v]
        if ms:
            self.client.log_batch(run.info.run_id, metrics=ms)
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    @_translate
    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    @_translate
    def download(self, uri: str, dst: Path) -> Path:
        import mlflow

        dst.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))

    # --- ledger ---
    @_translate
    def append_ledger(self, entry: dict[str, Any]) -> str:
        """One MLflow run per lifecycle action in the lifecycle experiment; returns the run id."""
        exp = self.experiment_id(self.lifecycle_experiment)
        tags = {f"pfp.{k}": _tag_value(v) for k, v in entry.items() if k not in ("metrics",) and v is not None}
        tags[LEDGER_ACTION_TAG] = str(entry["action"])
        tags["mlflow.runName"] = f"{entry['action']}:{entry.get('model')}:{entry.get('to_version')}"
        run = self.client.create_run(exp, tags=tags)
        metrics = {k: float(v) for k, v in (entry.get("metrics") or {}).items()
                   if isinstance(v, int | float) and v == v}
        ts = int(time.time() * 1000)
        from mlflow.entities import Metric

        if metrics:
            self.client.log_batch(run.info.run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()])
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    @_translate
    def annotate_ledger(self, run_id: str, tags: dict[str, str]) -> None:
        """Facts added to a finished ledger entry (tags `pfp.<key>`), e.g. the serving confirmation."""
        for k, v in tags.items():
            self.client.set_tag(run_id, f"pfp.{k}", _tag_value(v))

    @_translate
    def ledger(self, model: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Lifecycle entries for one model, oldest first."""
        exp = self.client.get_experiment_by_name(self.lifecycle_experiment)
        if exp is None:
            return []
        runs = self.client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`pfp.model` = '{model}'", max_results=limit,
            order_by=["attributes.start_time DESC"],
        )
        out = []
        for r in runs:
            e: dict[str, Any] = {k[4:]: v for k, v in r.data.tags.items() if k.startswith("pfp.")}
            e["run_id"] = r.info.run_id
            e["start_time"] = r.info.start_time
            e["metrics"] = dict(r.data.metrics)
            out.append(e)
        out.sort(key=lambda e: (e["start_time"], e.get("seq", "")))
        return out


def _as_version(v: int | str) -> int:
    try:
        n = int(str(v))
    except ValueError:
        raise UserError(f"model version must be a positive integer (got {v!r})") from None
    if n < 1:
        raise UserError(f"model version must be a positive integer (got {v!r})")
    return n


def _int(v: str | None) -> int:
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0


def _tag_value(v: Any) -> str:
    if isinstance(v, str):
        return v[:5000]
    return json.dumps(v, default=str)[:5000]


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


def public_uri(uri: str) -> str:
    """A tracking URI fit to print: credentials embedded in it are masked."""
    if "@" in uri:
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
