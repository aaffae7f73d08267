#!/usr/bin/env bash
# Load figures of the broker: req/s and p50/p99 at 64 connections for `POST /`, the `log`
# action (tarpc to the logger) and the `event` action (AMQP publish with confirms, stored by
# the listener), next to a bare actix-web echo server. Release builds, loopback only, bounded
# runs. Needs the local infra (`project/infra.sh up`) and wrk.
#
#   bash broker/bench/run.sh            # 10 s per case
#   DURATION=5s bash broker/bench/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
BROKER_PORT=18180 LOGGER_PORT=18184 LOGGER_RPC_PORT=15101 LISTENER_PORT=18186 ECHO_PORT=18190
# Fixed names: repeated runs reuse one queue, exchange and database instead of piling them up.
EXCHANGE=bench_logs_topic QUEUE=bench_logs MONGO_DB=broker_bench

cargo build --release -p logger -p listener -p broker
cargo build --release -p broker --example echo

queued() { rabbitmqctl -q list_queues name messages 2>/dev/null | awk -v q="$QUEUE" '$1 == q { print $2 }'; }
# Events left by an earlier run would be stored during this one and skew it.
rabbitmqctl -q purge_queue "$QUEUE" >/dev/null 2>&1 || true

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
logs=$(mktemp -d)
export RUST_LOG=warn  # request logging would measure the terminal, not the broker

PORT=$LOGGER_PORT RPC_PORT=$LOGGER_RPC_PORT MONGO_DB=$MONGO_DB target/release/logger >"$logs/logger.log" 2>&1 &
pids+=($!)
PORT=$LISTENER_PORT QUEUE_NAME=$QUEUE EXCHANGE=$EXCHANGE LOGGER_RPC_ADDR=127.0.0.1:$LOGGER_RPC_PORT \
  CONNECTION_NAME=bench-listener target/release/listener >"$logs/listener.log" 2>&1 &
pids+=($!)
PORT=$BROKER_PORT EXCHANGE=$EXCHANGE LOGGER_RPC_ADDR=127.0.0.1:$LOGGER_RPC_PORT \
  target/release/broker >"$logs/broker.log" 2>&1 &
pids+=($!)
target/release/examples/echo $ECHO_PORT >"$logs/echo.log" 2>&1 &
pids+=($!)

wait_for() {
  for _ in $(seq 100); do curl -fs -o /dev/null "$1" -X "${2:-GET}" && return 0; sleep 0.1; done
  echo "no answer from $1 (logs in $logs)" >&2; exit 1
}
wait_for "http://127.0.0.1:$LOGGER_PORT/ready"
wait_for "http://127.0.0.1:$LISTENER_PORT/ready"
wait_for "http://127.0.0.1:$BROKER_PORT/health"
wait_for "http://127.0.0.1:$ECHO_PORT/" POST

only=${ONLY:-}  # e.g. ONLY=log runs the matching cases only
run() { # name url body
  [[ -n $only && $1 != *"$only"* ]] && return 0
  local line
  line=$(BODY=$3 wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s broker/bench/post.lua "$2" | grep '^RESULT')
  printf '%-28s %s\n' "$1" "${line#RESULT }"
}
log='{"action":"log","log":{"name":"bench","data":"load test"}}'
event='{"action":"event","log":{"name":"bench","data":"load test"}}'
echo "service logs in $logs"
echo "wrk -t2 -c$CONNECTIONS -d$DURATION, $(nproc) cores, release builds, RUST_LOG=warn"
run "echo (bare actix-web)" "http://127.0.0.1:$ECHO_PORT/" ''
run "broker POST /" "http://127.0.0.1:$BROKER_PORT/" ''
run "broker log (tarpc)" "http://127.0.0.1:$BROKER_PORT/handle" "$log"
run "broker event (AMQP)" "http://127.0.0.1:$BROKER_PORT/handle" "$event"
# The listener stores events at its own pace: how long until every published one is stored.
started=$(date +%s)
for _ in $(seq 120); do [[ "$(queued)" == "0" ]] && break; sleep 1; done
echo "event queue drained $(( $(date +%s) - started ))s after the run (left: $(queued))"
for service in broker logger listener; do
  failures=$(grep -c '"level":"\(ERROR\|WARN\)"' "$logs/$service.log" || true)
  echo "$service: $failures warnings/errors logged$( ((failures)) && printf ', e.g. ' && grep -m1 -o '"message":"[^"]*"' "$logs/$service.log" | head -1)"
done
