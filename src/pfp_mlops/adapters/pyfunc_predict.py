"""Predicting with a registered version exactly as `pfp serve` does: through its MLflow pyfunc (model from code).

Used offline by the monitor (never in the request path): the drift reference (the version's predictions on its test
split) and the shadow scoring of the previous production on the images live traffic brought. Loaded the way
`mlflow models serve` and `pfp serve` load it: MLflow's `SERVING_MODEL_CONFIG` (a JSON object, e.g. `{"conf": 0.1}`)
overrides the logged model config, so a monitor run with the server's environment scores with the server's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pfp_mlops.adapters.mlflow_registry import translate_errors
from pfp_mlops.domain.errors import ConfigError, InfraError, NotFoundError
from pfp_mlops.domain.prediction_log import Box


class PyfuncPredictor:
    def __init__(self, model_uri: str) -> None:
        import json
        import os

        import mlflow

        self.uri = model_uri
        raw = os.environ.get("SERVING_MODEL_CONFIG")  # MLflow's own serving variable (scoring_server)
        try:
            extra = {"model_config": json.loads(raw)} if raw else {}
        except ValueError:
            raise ConfigError("SERVING_MODEL_CONFIG is not a JSON object (e.g. {\"conf\": 0.1})") from None
        try:
            with translate_errors():
                self.model = mlflow.pyfunc.load_model(model_uri, **extra)
        except (NotFoundError, InfraError):  # unknown version / store unreachable: already ours
            raise
        except Exception as e:  # noqa: BLE001 - a version without loadable artifacts: one clear error
            raise NotFoundError(f"{model_uri}: cannot load ({type(e).__name__}: {str(e)[:160]})") from None

    def predict(self, images: list[Path], *, batch: int = 32) -> list[tuple[int, int, tuple[Box, ...]]]:
        """(width, height, boxes) per image, in input order."""
        import pandas as pd
        from PIL import Image

        out: list[tuple[int, int, tuple[Box, ...]]] = []
        for i in range(0, len(images), batch):
            chunk = images[i:i + batch]
            df: Any = self.model.predict(pd.DataFrame({"image": [str(p) for p in chunk]}))
            per: list[list[Box]] = [[] for _ in chunk]
            for row in df.itertuples(index=False):
                per[int(row.image)].append(Box(int(row.class_id), float(row.confidence), float(row.x1),
                                               float(row.y1), float(row.x2), float(row.y2)))
            for path, boxes in zip(chunk, per, strict=True):
                with Image.open(path) as im:
                    w, h = im.size
                out.append((w, h, tuple(boxes)))
        return out
