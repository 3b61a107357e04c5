"""The scrubber behind every line pfp prints or logs (cli/output.py)."""

from __future__ import annotations

import pytest

from pfp_mlops.cli import output


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
