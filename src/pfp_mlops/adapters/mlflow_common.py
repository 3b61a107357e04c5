"""What every MLflow-facing adapter module shares: turning MLflow/HTTP/database errors into pfp's own, and tag
encoding. The only place that says `except MlflowException` for translation (the others catch it only to look at
an error code they expect, such as RESOURCE_ALREADY_EXISTS)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pfp_mlops.domain.errors import InfraError, NotFoundError, PfpError, UserError
from pfp_mlops.uris import public_uri

T = TypeVar("T")


def translated(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: MLflow, HTTP and database errors raised inside become pfp's own."""

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




def error_code(e: Exception) -> str:
    return str(getattr(e, "error_code", "") or "")
