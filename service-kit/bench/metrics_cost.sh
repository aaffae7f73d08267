#!/usr/bin/env bash
# CPU time per request of `POST /` with and without the HTTP server metrics middleware, in one
# run: two release servers of the same code (service-kit/examples/metrics_cost.rs, every
# middleware a service has, one worker each), loaded in turn by wrk, each server's utime+stime
# read from /proc/<pid>/stat before and after. Rounds alternate, so drift hits both alike.
#
#   bash service-kit/bench/metrics_cost.sh          # 3 rounds of 10 s per server
#   ROUNDS=5 DURATION=5s bash service-kit/bench/metrics_cost.sh
#   PROFILE=dev bash service-kit/bench/metrics_cost.sh   # the debug build (no release build needed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-16} ROUNDS=${ROUNDS:-3}
ON_PORT=${ON_PORT:-18290} OFF_PORT=${OFF_PORT:-18291}

PROFILE=${PROFILE:-release}
case "$PROFILE" in release) DIR=release ;; dev) DIR=debug ;; *) echo "PROFILE must be release or dev" >&2; exit 2 ;; esac
cargo build --profile "$PROFILE" -p service-kit --example metrics_cost
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
export RUST_LOG=warn
target/$DIR/examples/metrics_cost "$ON_PORT" on >/dev/null 2>&1 &
pids+=($!)
target/$DIR/examples/metrics_cost "$OFF_PORT" off >/dev/null 2>&1 &
pids+=($!)
for port in "$ON_PORT" "$OFF_PORT"; do
  for _ in $(seq 100); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A cpu=([on]=0 [off]=0) reqs=([on]=0 [off]=0)
for round in $(seq "$ROUNDS"); do
  for mode in on off; do
    if [ "$mode" = on ]; then pid=${pids[0]} port=$ON_PORT; else pid=${pids[1]} port=$OFF_PORT; fi
    before=$(ticks "$pid")
    result=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s project/bench/post.lua "http://127.0.0.1:$port/" | grep '^RESULT')
    after=$(ticks "$pid")
    n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
    cpu[$mode]=$((cpu[$mode] + after - before)) reqs[$mode]=$((reqs[$mode] + n))
    echo "round $round metrics $mode: $n requests, $((after - before)) ticks; $result"
  done
done
for mode in on off; do
  awk -v t="${cpu[$mode]}" -v n="${reqs[$mode]}" -v hz="$hz" -v m="$mode" \
    'BEGIN { printf "metrics %-3s %.2f us CPU per request (%d requests)\n", m, t * 1e6 / hz / n, n }'
done
