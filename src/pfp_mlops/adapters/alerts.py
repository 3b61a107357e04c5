"""Alerts: a structured log line and an alerts-file entry always; a JSON POST to a webhook when configured.

A failing webhook is reported in the returned status and never raises: alerts must not block a rollback.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger("pfp.alerts")


def send_alert(alert: dict[str, Any], *, alerts_file: Path, webhook_url: str | None, timeout_s: float = 3.0,
               retries: int = 2) -> dict[str, Any]:
    """Deliver one alert; returns {"file": path, "webhook": "sent" | "failed: ..." | "not configured"}."""
    alert = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **alert}
    log.warning("ALERT %s", json.dumps(alert, sort_keys=True, default=str))
    alerts_file.parent.mkdir(parents=True, exist_ok=True)
    with alerts_file.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(alert, sort_keys=True, default=str) + "\n")
    status: dict[str, Any] = {"file": str(alerts_file), "webhook": "not configured"}
    if not webhook_url:
        return status
    body = json.dumps({"text": alert.get("summary", "pfp alert"), **alert}, default=str).encode()
    last = ""
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(webhook_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
                if 200 <= resp.status < 300:
                    status["webhook"] = "sent"
                    return status
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            last = type(e).__name__
        if attempt < retries:
            time.sleep(0.2 * 2**attempt)
    status["webhook"] = f"failed: {last}"
    log.error("alert webhook failed after %d attempts: %s", retries + 1, last)
    return status
