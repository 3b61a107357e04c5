"""MLflow's scoring protocol, reused, not re-implemented: request parsing, error JSON, prediction JSON, loading.

`pfp serve` must answer exactly like `mlflow models serve` (same request formats, same predictions, same
statuses), so it calls the parsing helpers of `mlflow.pyfunc.scoring_server` that MLflow's own `/invocations`
uses, and keeps its content-type rules (415 for an unsupported type, charset or parameter; 400 for bad input).
Differences, on purpose: no stack trace in an error answer, and a missing Content-Type is 415 (MLflow: 500).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pfp_mlops.domain.errors import InfraError

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = [CSV, JSON, PARQUET]


class ScoringError(Exception):
    """A request the server answers with an error status (4xx/5xx), already shaped as MLflow answers it."""

    def __init__(self, status: int, content: str, media_type: str = JSON) -> None:
        super().__init__(content)
        self.status = status
        self.content = content
        self.media_type = media_type


def bad_request(message: str, error_code: str = "BAD_REQUEST", status: int = 400) -> ScoringError:
    """An error answer with MLflow's JSON body: {"error_code": ..., "message": ...}."""
    return ScoringError(status, json.dumps({"error_code": error_code, "message": message}))


@dataclass
class Parsed:
    data: Any  # a pandas DataFrame (or what MLflow's parser made of `instances`/`inputs`)
    params: dict[str, Any] | None


def parse_request(body: bytes, content_type: str | None, model: Any) -> Parsed:
    """The request body as the model input, the way MLflow's scoring server parses it."""
    from io import BytesIO, StringIO

    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as ss

    if not content_type:
        raise ScoringError(415, f"This predictor only supports the following content types: Types: "
                                f"{CONTENT_TYPES}. Got no Content-Type.", "text/plain")
    parts = [p.strip() for p in content_type.split(";")]
    mime, pairs = parts[0], parts[1:]
    values = {key: value for pair in pairs for key, _, value in [pair.partition("=")]}
    if values.get("charset", "utf-8").lower() != "utf-8":
        raise ScoringError(415, "The scoring server only supports UTF-8", "text/plain")
    if unexpected := set(values).difference({"charset"}):
        raise ScoringError(415, f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}. "
                                f"{ss.SCORING_PROTOCOL_CHANGE_INFO}", "text/plain")
    schema = model.metadata.get_input_schema()
    try:
        if mime == CSV:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as ex:
                raise bad_request(f"Ensure that input is a valid UTF-8 encoded string. Error: '{ex!r}'") from None
            return Parsed(ss.parse_csv_input(csv_input=StringIO(text), schema=schema), None)
        if mime == JSON:
            parsed = ss._parse_json_data(body, model.metadata, schema)
            return Parsed(parsed.data, parsed.params)
        if mime == PARQUET:
            return Parsed(ss.parse_parquet_input(parquet_input=BytesIO(body)), None)
    except MlflowException as e:
        raise _from_mlflow(e) from None
    raise ScoringError(415, f"This predictor only supports the following content types: Types: {CONTENT_TYPES}."
                            f" Got '{content_type}'.", "text/plain")


def predict(model: Any, parsed: Parsed) -> Any:
    """model.predict as MLflow's server calls it; a failure is MLflow's 400 answer (schema errors keep theirs)."""
    import inspect

    from mlflow.exceptions import MlflowException

    try:
        if "params" in inspect.signature(model.predict).parameters:
            return model.predict(parsed.data, params=parsed.params)
        return model.predict(parsed.data)
    except MlflowException as e:
        raise _from_mlflow(e, prefix="Failed to predict data. Error: ") from None
    except Exception:
        raise bad_request("Encountered an unexpected error while evaluating the model. Verify that the "
                          "serialized input Dataframe is compatible with the model for inference.") from None


def predictions_json(predictions: Any) -> str:
    """{"predictions": [...records...]}: MLflow's own serialisation."""
    from io import StringIO

    from mlflow.pyfunc import scoring_server as ss

    out = StringIO()
    ss.predictions_to_json(predictions, out)
    return out.getvalue()


def _from_mlflow(e: Any, prefix: str = "") -> ScoringError:
    message = prefix + str(e.message)
    if len(message) > 2000:  # MLflow echoes the whole input (base64 images) back
        message = message[:2000] + " …"
    return ScoringError(e.get_http_status_code(), json.dumps({"error_code": e.error_code, "message": message}))


def load_model(uri: str) -> Any:
    """Load an exact version URI as `mlflow models serve` does (SERVING_MODEL_CONFIG, a JSON object, overrides
    the model's config, e.g. `conf`); a failed download or load is an InfraError."""
    from mlflow.pyfunc import scoring_server as ss

    try:
        return ss.load_model_with_mlflow_config(uri)
    except Exception as e:  # noqa: BLE001 - any failure to load means: keep the old model
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise InfraError(f"cannot load {uri}: {type(e).__name__}: {first}") from None


def mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")
