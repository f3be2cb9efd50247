#!/usr/bin/env bash
# Start a real MLflow tracking server (and UI) for the harness, in the background.
#
# Defaults: bound to 127.0.0.1:5000, backend store and artifact root = the harness's
# default store (`harness store`: $HARNESS_HOME, else ~/.local/share/recsys-harness), where
# `harness run` logs from any folder. MLflow's host-header and CORS protections stay on.
# Everything is configurable through the environment:
#   MLFLOW_HOST, MLFLOW_PORT, MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION,
#   HARNESS_MLFLOW_DATA (pid file, log, artifacts), MLFLOW_WAIT_SECONDS
# Usage: bash mlflow/start.sh [--foreground]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
data="${HARNESS_MLFLOW_DATA:-$here/data}"
wait_s="${MLFLOW_WAIT_SECONDS:-120}"
find_bin() { local found; found="$(command -v "$1" || true)"; echo "${found:-$root/.venv/bin/$1}"; }
mlflow_bin="$(find_bin mlflow)"
harness_bin="$(find_bin harness)"
[ -x "$mlflow_bin" ] && [ -x "$harness_bin" ] || { echo "error: mlflow/harness not found; run 'make install' first" >&2; exit 2; }
# the store `harness run` logs to when no tracking URI is set: one answer, from the harness
backend="${MLFLOW_BACKEND_STORE_URI:-$("$harness_bin" store)}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$("$harness_bin" store --artifacts)}"
mkdir -p "$data" "$artifacts"
# MLflow's GenAI job runner is a third Python process as heavy as the server; the
# harness's runs and the UI never use it (set MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true for it)
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
args=(server --host "$host" --port "$port" --backend-store-uri "$backend"
      --artifacts-destination "$artifacts" --workers 1)

if [ "${1:-}" = "--foreground" ]; then
  exec "$mlflow_bin" "${args[@]}"
fi
if [ -f "$data/server.pid" ] && kill -0 "$(cat "$data/server.pid")" 2>/dev/null; then
  echo "MLflow server already running (pid $(cat "$data/server.pid")): http://$host:$port"
  exit 0
fi
setsid nohup "$mlflow_bin" "${args[@]}" >"$data/server.log" 2>&1 < /dev/null &
echo $! > "$data/server.pid"
deadline=$((SECONDS + wait_s))
while [ "$SECONDS" -lt "$deadline" ]; do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
       "http://$host:$port/health" >/dev/null 2>&1; then
    # workflowType: MLflow 3.x's UI otherwise opens experiments on its GenAI traces page
    echo "MLflow UI: http://$host:$port/#/experiments?workflowType=machine_learning"
    echo "  (backend $backend; stop with 'make ui-stop')"
    exit 0
  fi
  kill -0 "$(cat "$data/server.pid")" 2>/dev/null || { echo "error: server exited; see $data/server.log" >&2; tail -20 "$data/server.log" >&2; exit 3; }
  sleep 0.2  # a server answers a few seconds after it starts: the URL as soon as it does
done
echo "error: server not healthy after ${wait_s}s; see $data/server.log" >&2
exit 3
