# `pfp serve`: the model server that follows the `production` alias (built from the repository root:
# `docker compose build serve`). CPU-only torch keeps the image small; the model is pulled from the MLflow
# server at start and again whenever the alias moves.
FROM python:3.11-slim

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

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# The pinned set the tests ran with (constraints.txt); torch from the CPU wheel index.
RUN pip install --upgrade pip \
    && pip install -c constraints.txt torch torchvision --index-url https://download.pytorch.org/whl/cpu \
    && pip install -c constraints.txt ultralytics-opencv-headless . \
    && useradd --create-home --uid 10001 serve \
    && mkdir -p /tmp/yolo /home/serve/.pfp && chown serve /tmp/yolo /home/serve/.pfp

USER serve
WORKDIR /home/serve
EXPOSE 8080

# The real command (alias, workers) lives in docker-compose.yaml.
CMD ["pfp", "serve", "--host", "0.0.0.0", "--port", "8080"]
