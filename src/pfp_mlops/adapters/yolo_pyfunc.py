"""MLflow "model from code" for a YOLO detector. This file is logged WITH the model: it must import nothing
from pfp_mlops, so production needs only mlflow, ultralytics and torch to load `models:/<name>@production`.

Input: a DataFrame with a string column `image`: a local file path or base64-encoded image bytes (REST).
Output: one row per detection: image (row index of the input), class_id, class_name, confidence, x1, y1, x2, y2
(pixels of the original image).
"""

import base64
import io
import os
import tempfile

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

COLUMNS = ["image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"]


class YoloDetector(PythonModel):
    def load_context(self, context):
        for key, value in (("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0"), ("YOLO_VERBOSE", "False")):
            os.environ.setdefault(key, value)
        os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), "pfp-yolo-serving"))
        from ultralytics import YOLO

        cfg = context.model_config or {}
        self.conf = float(cfg.get("conf", 0.25))
        self.iou = float(cfg.get("iou", 0.7))
        self.imgsz = int(cfg.get("imgsz", 640))
        self.model = YOLO(context.artifacts["weights"], task="detect")
        self.names = self.model.names

    def _load(self, value):
        from PIL import Image

        if isinstance(value, bytes | bytearray):
            return Image.open(io.BytesIO(value)).convert("RGB")
        text = str(value)
        if os.path.isfile(text):
            return Image.open(text).convert("RGB")
        try:
            return Image.open(io.BytesIO(base64.b64decode(text, validate=True))).convert("RGB")
        except Exception as e:
            raise ValueError("each 'image' must be an existing file path or base64-encoded image bytes") from e

    def predict(self, context, model_input: pd.DataFrame, params=None):  # a list of images is accepted too
        if isinstance(model_input, pd.DataFrame):
            if "image" not in model_input.columns:
                raise ValueError("input must have a column named 'image'")
            values = list(model_input["image"])
        elif isinstance(model_input, list | tuple):
            values = list(model_input)
        else:
            values = [model_input]
        params = params or {}
        conf = float(params.get("conf", self.conf))
        rows = []
        images = [self._load(v) for v in values]
        if images:
            results = self.model.predict(images, conf=conf, iou=self.iou, imgsz=self.imgsz, verbose=False,
                                         device="cpu" if not _cuda() else None)
            for i, r in enumerate(results):
                boxes = r.boxes
                for cls, score, xyxy in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist()):
                    rows.append([i, int(cls), str(self.names[int(cls)]), float(score), *map(float, xyxy)])
        return pd.DataFrame(rows, columns=COLUMNS)


def _cuda():
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


mlflow.models.set_model(YoloDetector())
