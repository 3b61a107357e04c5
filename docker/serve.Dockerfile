# REST scoring server for the registered production model (models:/<name>@production).
# CPU-only torch keeps the image small; the model is pulled from the MLflow server at start.
FROM python:3.11-slim

ARG MLFLOW_VERSION=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/tmp/yolo \
    MLFLOW_DISABLE_TELEMETRY=true

# libglib2.0-0: required by OpenCV (even the headless build) on slim images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN pip install "mlflow${MLFLOW_VERSION:+==${MLFLOW_VERSION}}" ultralytics-opencv-headless torch torchvision \
        --extra-index-url https://download.pytorch.org/whl/cpu \
    && useradd --create-home --uid 10001 serve \
    && mkdir -p /tmp/yolo && chown serve /tmp/yolo

USER serve
WORKDIR /home/serve
EXPOSE 8080

# The real command (which model, env manager) lives in docker-compose.yaml.
CMD ["mlflow", "models", "serve", "-m", "models:/pfp-detector@production", \
     "--host", "0.0.0.0", "--port", "8080", "--env-manager", "local"]
