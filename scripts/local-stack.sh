#!/usr/bin/env bash
# The production topology without Docker: PostgreSQL (MLflow backend), moto S3 (artifacts + DVC remote) and an
# MLflow server, on loopback ports. Prints the variables to export in another shell; Ctrl-C stops everything.
#   scripts/local-stack.sh                 # needs `make install` and PostgreSQL (apt-get install -y postgresql)
#   PFP_STACK_DIR=/tmp/stack scripts/local-stack.sh   # keep the logs there
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" scripts/local_stack.py "$@"
