"""Secrets never printed, and where pfp's logs go: the one registry of secret strings, `scrub`, the log set-up.

Below the CLI (the renderer in `cli/output.py`, the CLI runner) and the Python API (`session.open_context`) alike:
both register the secrets of the environment and the settings, and everything they print or log passes `scrub`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path

_SECRETS: list[str] = []
# Variables whose whole value is a secret, and variables holding URLs whose userinfo (user:password@) is one.
SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "WANDB_API_KEY")
URL_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PFP_OPTUNA_STORAGE", "MLFLOW_S3_ENDPOINT_URL")
# A webhook URL is a bearer credential (Slack's carry the token in the path): never printed whole.
WHOLE_URL_VARS = ("PFP_ALERT_WEBHOOK_URL",)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@]+)@")


def register_secrets(values: Iterable[str] = ()) -> None:
    """Remember strings that must never be printed or logged: the given ones, the secret variables, the passwords
    inside URL variables and whole webhook URLs. Safe to call repeatedly (once per command)."""
    found = list(values)
    found += [os.environ.get(k, "") for k in SECRET_VARS + WHOLE_URL_VARS]
    for key in URL_VARS:
        found += _url_secrets(os.environ.get(key, ""))
    for v in found:
        if v and len(v) >= 4 and v not in _SECRETS:
            _SECRETS.append(v)
    _SECRETS.sort(key=len, reverse=True)  # a secret containing another is replaced whole


def _url_secrets(url: str) -> list[str]:
    m = _USERINFO.search(url or "")
    if not m:
        return []
    user, _, password = m["userinfo"].partition(":")
    return [password, f"{user}:{password}"] if password else []


def scrub(text: str) -> str:
    """Replace every registered secret by *** and mask the userinfo of any URL (`scheme://***@host`)."""
    for s in _SECRETS:
        text = text.replace(s, "***")
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                           "level": record.levelname, "logger": record.name, "message": record.getMessage()})


def setup_logging(level: str, fmt: str, log_dir: Path | None) -> None:
    """pfp's logs on stderr (text or JSON lines) and, when a state folder exists, in `<PFP_HOME>/logs/pfp.log`."""
    root = logging.getLogger("pfp")
    root.handlers.clear()
    root.setLevel(level)
    root.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handler.setFormatter(_JsonFormatter() if fmt == "json" else text)
    handler.addFilter(_ScrubFilter())
    root.addHandler(handler)
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_dir / "pfp.log", encoding="utf-8")
            fh.setFormatter(_JsonFormatter())
            fh.addFilter(_ScrubFilter())
            fh.setLevel(logging.DEBUG)
            root.addHandler(fh)
        except OSError:
            pass
    for noisy in ("mlflow", "alembic", "urllib3", "botocore", "ultralytics", "optuna", "git"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
