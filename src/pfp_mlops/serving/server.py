"""Start uvicorn with one app per worker; SIGTERM lets in-flight requests finish (uvicorn's graceful shutdown)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pfp_mlops.serving import state
from pfp_mlops.serving.runtime import ENV, Options


def serve(opts: Options, *, graceful_timeout_s: float = 30.0, log_level: str = "info") -> None:
    import uvicorn

    directory = Path(opts.state_dir)
    state.reset(directory, workers=opts.workers, model=opts.model, alias=opts.alias)
    os.environ[ENV] = opts.to_env()
    if opts.workers > 1:  # one metrics folder that every worker writes and any worker reads
        prom = directory / "prometheus"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    uvicorn.run("pfp_mlops.serving.app:create_app", factory=True, host=opts.host, port=opts.port,
                workers=opts.workers, timeout_graceful_shutdown=int(graceful_timeout_s),
                log_level=log_level.lower(), access_log=False, server_header=False)
