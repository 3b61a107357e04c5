"""After an alias moved: make the model server follow now, and wait (bounded) until every worker serves it.

`confirm_serving` (CONTRACTS §2) is plain HTTP against `pfp serve`: POST /admin/reload, then poll
/v2/health/ready until all workers report the version. A server that does not follow in time is a warning (the
registry change stands); the outcome is recorded on the ledger entry of the change (`serving_*` tags).
"""

from __future__ import annotations

import re
import time
from typing import Any

from pfp_mlops.adapters.serve_client import Unreachable
from pfp_mlops.adapters.serve_client import call as _call
from pfp_mlops.domain.errors import UserError

_URL = re.compile(r"^https?://[^\s/?#]+(:\d+)?/?$")


def _public(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def check_url(url: str | None) -> None:
    """Before anything moves: a malformed --serve-url is refused up front (exit 2), not after the registry changed."""
    if url is not None and not _URL.match(url):
        raise UserError(f"--serve-url / PFP_SERVE_URL must be http(s)://host[:port] (got {url!r})")


def confirm_serving(url: str, *, model: str, version: int, timeout_s: float = 60, token: str | None = None,
                    poll_s: float = 0.5) -> dict[str, Any]:
    """{"url", "ok", "served_version", "seconds", "message"}; raises UserError only for a malformed URL."""
    check_url(url or "")
    base = url.rstrip("/")
    t0 = time.monotonic()
    out: dict[str, Any] = {"url": _public(base), "ok": False, "served_version": None, "seconds": 0.0,
                           "message": ""}
    try:
        status, body = _call("POST", base + "/admin/reload", token, min(10.0, timeout_s))
        if status >= 400:
            out["message"] = f"reload refused (HTTP {status}: {body.get('error', '')}); waiting for its own poll"
    except Unreachable as e:
        out["message"] = f"server unreachable ({type(e).__name__}); waiting"
    last: dict[str, Any] = {}
    while True:
        try:
            status, last = _call("GET", base + "/v2/health/ready", None, 5.0)
        except Unreachable:
            last = {}
        workers = last.get("workers") or []
        versions = sorted({w.get("version") for w in workers}, key=str)
        out["served_version"] = last.get("version")
        if last.get("model") not in (None, model):
            out["message"] = f"the server serves {last.get('model')!r}, not {model!r}"
            break
        if workers and versions == [version] and len(workers) >= int(last.get("expected_workers") or 1):
            out.update(ok=True, served_version=version,
                       message=f"all {len(workers)} worker(s) serve v{version}")
            break
        if time.monotonic() - t0 >= timeout_s:
            errors = "; ".join(sorted({w["last_error"] for w in workers if w.get("last_error")}))
            seen = ", ".join(f"v{v}" for v in versions) or "nothing"
            out["message"] = (f"server did not follow to v{version} within {timeout_s:g}s (workers serve {seen})"
                              + (f": {errors}" if errors else ""))
            break
        time.sleep(poll_s)
    out["seconds"] = round(time.monotonic() - t0, 2)
    return out


def confirm_after_move(ctx: Any, *, serve_url: str | None, version: int | None, alias: str,
                       ledger_run_id: str | None) -> dict[str, Any] | None:
    """For promote/validate/rollback: confirm when a server URL is configured and `alias` moved to `version`."""
    url = serve_url or ctx.settings.serve_url
    if not url or version is None:
        return None
    token = ctx.settings.serve_token.get_secret_value() if ctx.settings.serve_token else None
    try:
        status, ready = _call("GET", url.rstrip("/") + "/v2/health/ready", None, 5.0) if _URL.match(url) else (0, {})
    except Unreachable:
        ready = {}
    followed = ready.get("alias")
    if followed and followed != alias:
        return {"url": _public(url), "ok": True, "served_version": ready.get("version"), "seconds": 0.0,
                "message": f"the server follows {followed!r}, not {alias!r}: nothing to confirm"}
    result = confirm_serving(url, model=ctx.model_name, version=version, token=token,
                             timeout_s=ctx.cfg.serve.confirm_timeout_s)
    if ledger_run_id:
        from pfp_mlops.services.lifecycle import annotate

        try:
            annotate(ctx, ledger_run_id, {"serving_url": result["url"], "serving_ok": str(result["ok"]).lower(),
                                          "serving_version": str(result["served_version"]),
                                          "serving_seconds": str(result["seconds"]),
                                          "serving_message": result["message"]})
        except Exception as e:  # noqa: BLE001 - the registry change stands; say why the note is missing
            result["message"] += f" (not recorded on the ledger: {getattr(e, 'message', type(e).__name__)})"
    return result
