#!/usr/bin/env bash
# `serve deploy` of configs/local.yaml to a running Ray cluster, as an operator does it:
# start a head node with configs/fast-path.env in its environment (Serve's HAProxy
# ingress), deploy through its dashboard, wait for `serve status` to say RUNNING, check
# stage one and every ticket, check that the application's metrics counted every request,
# stop the cluster and check that its HAProxy stopped with it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
METRICS_PORT=${METRICS_PORT:-8080}
# Ray 2.60 turns token authentication on for clusters started here, while its CLI
# sends the token (from ~/.ray/auth_token) only in token mode.
export RAY_AUTH_MODE=token
make models
# The fast path's environment, with this cluster's HAProxy files in a folder of its own.
HAPROXY_DIR=$(mktemp -d /tmp/ms-hap-XXXXXX)
eval "$($BIN/python -m ops.cluster_env "$HAPROXY_DIR")"

# --block keeps `ray start` in the foreground: SIGTERM to it stops this cluster, and only it.
$BIN/ray start --head --block --num-cpus=2 --port=0 --dashboard-port="$DASHBOARD_PORT" \
    --metrics-export-port="$METRICS_PORT" --disable-usage-stats &
HEAD_PID=$!
stop_cluster() {
    kill -TERM "$HEAD_PID" 2>/dev/null
    wait "$HEAD_PID" || true
    # Its HAProxy, had it outlived the cluster, is found by its folder and stopped here
    # (.ci/run then checks that no HAProxy at all is left).
    $BIN/python -c "import sys; from ops import haproxy; print(haproxy.stop(sys.argv[1]), \
        'HAProxy process(es) outlived the cluster and were stopped')" "$HAPROXY_DIR"
    rm -rf "$HAPROXY_DIR"
}
trap stop_cluster EXIT
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

# The node's metrics agent has counted every request above (20 warm-ups and 20 measured),
# in stage one and in stage two: the application's own metrics.
$BIN/python .ci/expect_metrics.py "http://127.0.0.1:$METRICS_PORT/metrics" 40
# Replicas first: a node stopping with replicas on it drains for 30 s.
$BIN/serve shutdown --address "$ADDRESS" --yes
