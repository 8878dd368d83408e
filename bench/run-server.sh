#!/usr/bin/env bash
# Benchmark: civicflow serve (in-memory store) against the minimal Beast ceiling server, in the
# same run, each pinned to core 0 with wrk pinned to core 1, 64 connections.
#
#   cmake --preset release && cmake --build --preset release
#   bench/run-server.sh [BUILD_DIR] [DURATION]       # defaults: build/release 20s
#
# Prints wrk's output for: a validation run (replies checked), civicflow, the ceiling; then the
# ratio. Needs wrk and taskset; uses ports 18080 (civicflow), 18081 (ceiling), 18082 (backend).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
duration="${2:-20s}"
civicflow="$build/server/civicflow"
ceiling="$build/bench/civicflow_bench_ceiling"
backend="$build/examples/civicflow_status_backend"
for bin in "$civicflow" "$ceiling" "$backend"; do
    [ -x "$bin" ] || { echo "run-server: $bin not built" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "run-server: wrk not installed" >&2; exit 2; }

tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

wait_listening() {  # file
    for _ in $(seq 100); do grep -q '^listening on' "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "run-server: $1: server did not start" >&2; exit 1
}

"$backend" --port 18082 > "$tmp/backend.out" &
pids+=($!)
cat > "$tmp/civicflow.yaml" <<YAML
version: 1
log: { level: warn, access: false }
limits: { max_connections: 10000 }
backends:
  status: { base_url: "http://127.0.0.1:18082" }
  certificates: { base_url: "http://127.0.0.1:18082" }
  grievances: { base_url: "http://127.0.0.1:18082" }
YAML
taskset -c 0 "$civicflow" serve --config "$tmp/civicflow.yaml" --flows flows \
    --listen 127.0.0.1:18080 --threads 1 > "$tmp/civicflow.out" 2> "$tmp/civicflow.err" &
pids+=($!)
taskset -c 0 "$ceiling" --port 18081 --threads 1 > "$tmp/ceiling.out" &
pids+=($!)
wait_listening "$tmp/backend.out"
wait_listening "$tmp/civicflow.out"
wait_listening "$tmp/ceiling.out"

echo "== validation run (1 connection, every reply checked)"
VALIDATE=1 taskset -c 1 wrk -t1 -c1 -d3s -s bench/messages.lua http://127.0.0.1:18080/v1/messages

echo "== civicflow serve, in-memory store, 1 I/O thread on core 0"
taskset -c 1 wrk -t1 -c64 -d"$duration" --latency -s bench/messages.lua \
    http://127.0.0.1:18080/v1/messages | tee "$tmp/civicflow.wrk"

echo "== ceiling: minimal Beast server, fixed JSON, 1 thread on core 0"
taskset -c 1 wrk -t1 -c64 -d"$duration" --latency -s bench/fixed.lua \
    http://127.0.0.1:18081/ | tee "$tmp/ceiling.wrk"

ours=$(awk '/^Requests\/sec/ {print $2}' "$tmp/civicflow.wrk")
theirs=$(awk '/^Requests\/sec/ {print $2}' "$tmp/ceiling.wrk")
echo "== civicflow / ceiling throughput: $(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / b}')"
