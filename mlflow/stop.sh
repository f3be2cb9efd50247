#!/usr/bin/env bash
# Stop the server started by mlflow/start.sh (its whole process group).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${HARNESS_MLFLOW_DATA:-$here/data}"
pidfile="$data/server.pid"
if [ ! -f "$pidfile" ]; then echo "no MLflow server started from $data"; exit 0; fi
pid="$(cat "$pidfile")"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done  # up to 10 s to shut down
  kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; }
  echo "stopped MLflow server (pid $pid)"
else
  echo "MLflow server (pid $pid) was not running"
fi
rm -f "$pidfile"
