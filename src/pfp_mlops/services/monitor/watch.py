"""`pfp monitor watch`: `monitor run` every interval, for a long-running service (docker compose, systemd).

A rollback is reported and the loop goes on (the restored version is then monitored); an unreachable MLflow or a
transient error is logged and retried at the next tick. Bad configuration stops it (exit 2).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import ConfigError, InfraError, RegressionRolledBack
from pfp_mlops.monitor_config import parse_duration
from pfp_mlops.services.context import Context

log = logging.getLogger("pfp.monitor")


def watch(ctx: Context, *, every: str, max_runs: int | None = None, window: str | None = None,
          since: str | None = None, log_dir: Path | None = None, labels_dir: Path | None = None,
          serve_url: str | None = None, sleep: Any = time.sleep) -> dict[str, Any]:
    from pfp_mlops.services.monitor.run import parse_since, run_monitor

    try:
        interval = parse_duration(every, "--every")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if max_runs is not None and max_runs < 1:
        raise ConfigError("--max-runs must be at least 1")
    out: dict[str, Any] = {"runs": 0, "windows": 0, "rollbacks": [], "errors": []}
    while max_runs is None or out["runs"] < max_runs:
        started = time.monotonic()
        try:
            r = run_monitor(ctx, window=window, since=parse_since(since), log_dir=log_dir, labels_dir=labels_dir,
                            serve_url=serve_url)
            out["windows"] += len(r.windows)
        except RegressionRolledBack as e:
            out["windows"] += len(e.result.windows)
            out["rollbacks"].append(e.result.rollback)
            log.warning("%s", e.message)
        except InfraError as e:
            out["errors"].append(e.message)
            log.warning("monitor run failed, retrying in %s: %s", every, e.message)
        out["runs"] += 1
        if max_runs is not None and out["runs"] >= max_runs:
            break
        sleep(max(interval - (time.monotonic() - started), 0.0))
    return out
