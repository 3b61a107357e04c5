# MLflow tracking server + model registry for the pfp stack (see docker-compose.yaml).
# Backend store: PostgreSQL (psycopg2). Artifacts: S3/MinIO (boto3), proxied by the
# server (--serve-artifacts), so clients never need S3 credentials for MLflow artifacts.
FROM python:3.11-slim

# Pin the server to the client version you use, e.g. MLFLOW_VERSION=2.22.0 in .env
# (empty = latest release). Keep server and `pfp` client on compatible versions.
ARG MLFLOW_VERSION=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true

RUN pip install "mlflow${MLFLOW_VERSION:+==${MLFLOW_VERSION}}" psycopg2-binary boto3 \
    && useradd --create-home --uid 10001 mlflow

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000

# The real command (backend store, artifact destination, workers) lives in docker-compose.yaml.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
