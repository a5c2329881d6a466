#!/usr/bin/env bash
# Start an MLflow tracking server for medtune on one machine.
#
#   mlflow/start-server.sh                       # sqlite + local artifacts on 127.0.0.1:5000
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow@db/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=s3://medtune-mlflow/artifacts \
#   AWS_ENDPOINT_URL_S3=http://minio:9000 MLFLOW_HOST=0.0.0.0 mlflow/start-server.sh
#
# Artifacts are proxied by the server (--artifacts-destination): clients only need the tracking
# URI, and S3 credentials live on the server (environment or AWS config chain), never in a
# client's params or logs. MLFLOW_S3_ENDPOINT_URL follows AWS_ENDPOINT_URL_S3 for S3-compatible
# stores. One worker: the default of 4 takes about 1.4 GB and 36 s to start on a 2-core machine.
set -euo pipefail

HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
BACKEND="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$PWD/mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-$PWD/mlartifacts}"
WORKERS="${MLFLOW_WORKERS:-1}"

if [[ -n "${AWS_ENDPOINT_URL_S3:-}" && -z "${MLFLOW_S3_ENDPOINT_URL:-}" ]]; then
  export MLFLOW_S3_ENDPOINT_URL="$AWS_ENDPOINT_URL_S3"
fi
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"

exec mlflow server --host "$HOST" --port "$PORT" --workers "$WORKERS" \
  --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" --serve-artifacts
