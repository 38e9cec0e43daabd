#!/usr/bin/env bash
# `serve deploy` of configs/local.yaml to a running Ray cluster, as an operator does it:
# start a head node, deploy through its dashboard, wait for `serve status` to say RUNNING,
# check stage one and every ticket, scrape the application's metrics, stop the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
METRICS_PORT=${METRICS_PORT:-8080}
# Ray 2.60 turns token authentication on for clusters started here, while its CLI
# sends the token (from ~/.ray/auth_token) only in token mode.
export RAY_AUTH_MODE=token
make models

# --block keeps `ray start` in the foreground: SIGTERM to it stops this cluster, and only it.
$BIN/ray start --head --block --num-cpus=2 --port=0 --dashboard-port="$DASHBOARD_PORT" \
    --metrics-export-port="$METRICS_PORT" --disable-usage-stats &
HEAD_PID=$!
trap 'kill -TERM "$HEAD_PID" 2>/dev/null; wait "$HEAD_PID" || true' EXIT
ADDRESS="http://127.0.0.1:$DASHBOARD_PORT"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "timed out after ${seconds}s waiting for $what" >&2
    return 1
}

wait_for 120 "the dashboard" $BIN/serve status --address "$ADDRESS"
$BIN/serve deploy configs/local.yaml --address "$ADDRESS"
app_running() { $BIN/serve status --address "$ADDRESS" | grep -q "status: RUNNING"; }
wait_for 240 "the application to run" app_running
$BIN/serve status --address "$ADDRESS"

$BIN/python -m benchmarks.stage_one_latency --url http://127.0.0.1:8000 --requests 20 \
    --out results/ci_deploy.json

# The node's metrics agent: the application's own metrics, after the requests above.
metrics_exported() {
    local scraped
    scraped=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics")
    grep -q "^ray_multistage_stage_one_latency_ms_count" <<<"$scraped" &&
        grep -q "^ray_multistage_tickets_finished_total" <<<"$scraped"
}
wait_for 60 "the application's metrics" metrics_exported
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | $BIN/python -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
noise = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "replica"}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.name.startswith("ray_multistage_") and not s.name.endswith("_bucket"):
            tags = ",".join(f"{k}={v}" for k, v in s.labels.items() if k not in noise and not k.startswith("otel"))
            print(f"{s.name}{{{tags}}} {s.value:g}")
'
# Replicas first: a node stopping with replicas on it drains for 30 s.
$BIN/serve shutdown --address "$ADDRESS" --yes
