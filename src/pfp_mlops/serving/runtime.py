"""What one worker process needs, built from the options `pfp serve` passes down in PFP_SERVE_RUNTIME.

uvicorn starts each worker as a fresh process that imports `app:create_app`; the options travel as one JSON
environment variable so that every worker builds the same settings, config, registry and prediction log.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfp_mlops.serving.holder import Served

ENV = "PFP_SERVE_RUNTIME"
log = logging.getLogger("pfp.serve")


@dataclass
class Options:
    model: str
    alias: str
    host: str
    port: int
    workers: int
    poll_seconds: float
    max_request_bytes: int
    state_dir: str
    config: str | None = None
    profile: str | None = None
    overrides: list[str] | None = None  # the `--set KEY=VALUE` strings

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls) -> Options:
        return cls(**json.loads(os.environ[ENV]))


def sample_image_b64() -> str:
    """A small synthetic image for the warm-up prediction (no dataset needed on a serving machine)."""
    from PIL import Image

    im = Image.new("RGB", (96, 96), (120, 120, 120))
    for x in range(20, 60):
        for y in range(30, 70):
            im.putpixel((x, y), (200, 40, 40))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Worker:
    """Settings, registry access and the load + warm-up of one version, for one worker process."""

    def __init__(self, opts: Options) -> None:
        from pfp_mlops.overrides import parse_set
        from pfp_mlops.session import open_context

        self.opts = opts
        self.ctx = open_context(config=Path(opts.config) if opts.config else None, profile=opts.profile,
                                overrides=parse_set(opts.overrides or []))
        self.cfg = self.ctx.cfg
        self.settings = self.ctx.settings
        self.home = self.settings.resolved_home()
        self.state_dir = Path(opts.state_dir)
        self._run_ids: dict[int, str] = {}

    def resolve(self) -> tuple[int, str] | None:
        """One registry call per poll (the run id of a version never changes: read once)."""
        reg = self.ctx.registry
        version = reg.alias_version(self.opts.model, self.opts.alias)
        if version is None:
            return None
        if version not in self._run_ids:
            self._run_ids[version] = reg.version(self.opts.model, version).run_id or ""
        return version, self._run_ids[version]

    def load(self, version: int, run_id: str) -> Served:
        """`models:/<name>/<N>` (never @alias: the alias may move meanwhile), then one warm-up prediction."""
        import pandas as pd

        from pfp_mlops.adapters import mlflow_scoring as ms

        self.ctx.registry  # noqa: B018 - sets the tracking and registry URIs for load_model
        model = ms.load_model(f"models:/{self.opts.model}/{version}")
        ms.predict(model, ms.Parsed(pd.DataFrame({"image": [sample_image_b64()]}), None))
        return Served(self.opts.model, version, run_id, self.opts.alias, model)

    def alert(self, alert: dict[str, Any]) -> None:
        from pfp_mlops.adapters.alerts import send_alert

        send_alert(alert, alerts_file=self.home / "alerts.jsonl", webhook_url=self.settings.alert_webhook_url)

    def prediction_log(self, on_drop: Any) -> Any:
        from pfp_mlops.serving.predlog import PredictionLog

        pl = self.cfg.serve.prediction_log
        if not pl.enabled:
            return None
        directory = self.settings.prediction_log_dir or pl.dir or self.home / "predictions"
        upload = None
        if pl.s3_uri:
            from pfp_mlops.adapters.s3_upload import uploader

            secret = self.settings.aws_secret_access_key
            upload = uploader(pl.s3_uri, endpoint=self.settings.mlflow_s3_endpoint_url,
                              key_id=self.settings.aws_access_key_id,
                              secret=secret.get_secret_value() if secret else None)
        return PredictionLog(Path(directory), store_images=pl.store_images, max_bytes=pl.max_bytes,
                             max_age_s=pl.max_age_s, queue_size=pl.queue_size, upload=upload,
                             on_drop=on_drop).start()

    def token(self) -> str | None:
        t = self.settings.serve_token
        return t.get_secret_value() if t is not None and t.get_secret_value() else None
