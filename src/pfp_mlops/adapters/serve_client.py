"""HTTP to a running `pfp serve` (stdlib only): the reload trigger and the readiness report."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

Unreachable = (urllib.error.URLError, OSError)  # what a caller catches for "no server there"


def call(method: str, url: str, token: str | None, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """(status, JSON body or {}); an HTTP error status is returned, not raised."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the configured server
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}
