"""The scrubber behind every line pfp prints or logs (pfp_mlops/logs.py, re-exported by cli/output.py)."""

from __future__ import annotations

import pytest

from pfp_mlops import logs as output


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(output, "_SECRETS", [])
    for k in (*output.SECRET_VARS, *output.URL_VARS, *output.WHOLE_URL_VARS):
        monkeypatch.delenv(k, raising=False)


def test_secret_variables_and_url_passwords_are_replaced(monkeypatch):
    """Secret variables, the password inside a URL variable and a whole webhook URL never appear."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:pw-in-uri@mlflow:5000")
    monkeypatch.setenv("PFP_ALERT_WEBHOOK_URL", "https://hooks.example/services/T0/B0/tok")
    output.register_secrets(["given-secret"])
    text = ("aws-secret-value; pw-in-uri alone; https://hooks.example/services/T0/B0/tok; given-secret; "
            "bob:pw-in-uri")
    assert output.scrub(text) == "***; *** alone; ***; ***; ***"


def test_the_wandb_api_key_is_a_secret(monkeypatch):
    """WANDB_API_KEY (train.trackers: [mlflow, wandb]) is replaced wherever it would appear."""
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key-0123456789abcdef")
    output.register_secrets()
    assert output.scrub("wandb.init failed with key wandb-key-0123456789abcdef") == "wandb.init failed with key ***"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("MLflow unreachable at http://u:p@h:5000/api", "MLflow unreachable at http://***@h:5000/api"),
        ("postgresql+psycopg2://mlflow:pw@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
        ("http://host:5000/path?mail=a@b.c", "http://host:5000/path?mail=a@b.c"),
        ("no url here: a@b", "no url here: a@b"),
    ],
)
def test_userinfo_of_any_url_is_masked(raw, shown):
    """Credentials embedded in any URL are masked, even ones pfp was never told about."""
    assert output.scrub(raw) == shown


def test_short_values_are_not_secrets():
    """A 1–3 character value would blank out ordinary text: it is not registered."""
    output.register_secrets(["ab", ""])
    assert output.scrub("ab cd") == "ab cd"


# --- MLflow REST failures condensed to one readable cause (adapters/mlflow_registry.http_failure) ---------------

_REFUSED = ("API request to http://127.0.0.1:9/api/2.0/mlflow/registered-models/get failed with exception "
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            "/api/2.0/mlflow/registered-models/get?name=x (Caused by NewConnectionError(\"HTTPConnection(host="
            "'127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] Connection refused\"))")
_UNRESOLVED = ("API request to http://no-such-host.invalid:5000/api/2.0/mlflow/model-versions/create failed with "
               "exception HTTPConnectionPool(host='no-such-host.invalid', port=5000): Max retries exceeded with url: "
               "/api/2.0/mlflow/model-versions/create (Caused by NameResolutionError(\"HTTPConnection(host="
               "'no-such-host.invalid', port=5000): Failed to resolve 'no-such-host.invalid' ([Errno -2] Name or "
               "service not known)\"))")
_HUNG = ("API request to http://127.0.0.1:5/api/2.0/mlflow/registered-models/alias failed with exception "
         "HTTPConnectionPool(host='127.0.0.1', port=5): Max retries exceeded with url: "
         "/api/2.0/mlflow/registered-models/alias (Caused by ReadTimeoutError(\"HTTPConnectionPool(host='127.0.0.1',"
         "\n port=5): Read timed out. (read timeout=2.0)\"))")
_5XX = ("API request to http://h:5000/api/2.0/mlflow/runs/create failed with exception HTTPConnectionPool(host='h', "
        "port=5000): Max retries exceeded with url: /api/2.0/mlflow/runs/create (Caused by ResponseError('too many "
        "503 error responses'))")


@pytest.mark.parametrize(("message", "cause", "endpoint"), [
    (_REFUSED, "connection refused", "registered-models/get"),
    (_UNRESOLVED, "host name not resolved", "model-versions/create"),
    (_HUNG, "no answer within 7 s", "registered-models/alias"),
    (_5XX, "errors (5xx)", "runs/create"),
])
def test_http_failures_are_condensed_to_the_cause_and_the_endpoint(message, cause, endpoint, monkeypatch):
    from pfp_mlops.adapters.mlflow_registry import http_failure

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    line = http_failure(message)
    assert cause in line and line.endswith(f"(on {endpoint})")
    assert "\n" not in line and len(line) < 120


def test_an_unknown_failure_is_left_to_the_caller():
    from pfp_mlops.adapters.mlflow_registry import http_failure

    assert http_failure("RESOURCE_DOES_NOT_EXIST: Registered Model with name=x not found") is None
