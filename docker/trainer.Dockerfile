# `pfp train --worker`: one process of a shared Optuna study (PostgreSQL) tracked on the MLflow server.
# Built from the repository root (the package and its pins); the project (data/, dataset/, configs/) is mounted.
# CPU torch by default; for GPUs build FROM an image with CUDA torch and run with `gpus: all` (README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/tmp/yolo \
    MLFLOW_DISABLE_TELEMETRY=true

# libglib2.0-0: required by OpenCV (even the headless build) on slim images; git: pfp tags runs with the commit.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 git \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml constraints.txt README.md /src/
COPY src /src/src
RUN pip install -c /src/constraints.txt /src psycopg2-binary \
        --extra-index-url https://download.pytorch.org/whl/cpu \
    && useradd --create-home --uid 10001 trainer \
    && mkdir -p /tmp/yolo && chown trainer /tmp/yolo

USER trainer
WORKDIR /project

# The real command lives in docker-compose.yaml (`pfp train --worker`).
CMD ["pfp", "train", "--worker", "--json"]
