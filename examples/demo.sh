#!/usr/bin/env bash
# The README's demo: installs the dependencies (Debian 12), builds civicflow in Release, starts
# the example status backend on 127.0.0.1:9090 and `civicflow serve` with the shipped flows on
# 127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cmake --preset release > /dev/null
cmake --build --preset release --target civicflow civicflow_status_backend
# The backend's token reaches civicflow through the environment, never through a file.
export CIVICFLOW_STATUS_TOKEN="${CIVICFLOW_STATUS_TOKEN:-demo-token}"
build/release/examples/civicflow_status_backend --port 9090 --token "$CIVICFLOW_STATUS_TOKEN" &
backend=$!
trap 'kill "$backend" 2> /dev/null || true' EXIT
build/release/server/civicflow serve --config examples/civicflow.yaml --flows flows
