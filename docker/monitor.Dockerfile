# `pfp monitor watch`: the prediction log + delayed labels -> windows -> verdicts in MLflow; rollback on fail.
# pfp itself is installed (the monitor shadow-scores the previous version through its pyfunc, like serving).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/tmp/yolo \
    MLFLOW_DISABLE_TELEMETRY=true \
    PFP_HOME=/data/pfp

# libglib2.0-0: required by OpenCV (even the headless build) on slim images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 git \
    && rm -rf /var/lib/apt/lists/*

COPY . /src
RUN pip install -c /src/constraints.txt /src --extra-index-url https://download.pytorch.org/whl/cpu \
    && useradd --create-home --uid 10001 monitor \
    && mkdir -p /tmp/yolo /data/pfp /data/predictions && chown -R monitor /tmp/yolo /data

USER monitor
WORKDIR /home/monitor

# The real command (interval, log folder) lives in docker-compose.yaml.
CMD ["pfp", "monitor", "watch", "--every", "5m", "--log-dir", "/data/predictions"]
