#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike CPU time, the count is the
# same from run to run of the same binary and requests, whatever else the machine is doing, so a
# change to the hot path shows as a change of the count. Each process runs under callgrind (about
# 50x slower), its counters are zeroed once it is ready, N requests are sent one after another on
# one keep-alive connection (curl), and the counters are dumped.
#
#   bash project/bench/profile.sh           # `POST /` on the echo floor and the broker, and the
#                                           # `log` action through broker and logger: 2,000 each
#   N=500 bash project/bench/profile.sh     # fewer requests
#   TOP=40 bash project/bench/profile.sh    # more functions per profile
#   BIN_DIR=dir bash project/bench/profile.sh   # binaries of another build (broker, logger, echo),
#                                           # e.g. a copy taken before a change; builds nothing
#   OUT=dir PORT_BASE=18490 MONGO_DB=name bash project/bench/profile.sh
#                                           # another output dir, ports and database, so that two
#                                           # runs on one machine do not collide
#
# Prints instructions per request of each process and its costliest functions (inclusive);
# the profiles stay in $OUT (.local/profile/) for `callgrind_annotate` or kcachegrind. Release builds,
# default settings (`RUST_LOG=info`, JSON lines), on ports $PORT_BASE (18390) to +3 and the MongoDB
# database $MONGO_DB (bench_profile) of the machine's wire server (`bash project/infra.sh up`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${N:-2000} TOP=${TOP:-25} PORT_BASE=${PORT_BASE:-18390} MONGO_DB=${MONGO_DB:-bench_profile}
echo_port=$PORT_BASE broker_port=$((PORT_BASE + 1)) logger_port=$((PORT_BASE + 2)) rpc_port=$((PORT_BASE + 3))
command -v valgrind >/dev/null 2>&1 || { echo "[profile] valgrind not found: apt-get install valgrind" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR echo_bin=$BIN_DIR/echo
else
  bash project/deploy-check.sh build
  cargo build --release --locked -p broker --example echo
  bin=$target/release echo_bin=$target/release/examples/echo
fi

out=${OUT:-.local/profile}
rm -rf "$out" && mkdir -p "$out"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Starts `name` under callgrind (env from the remaining arguments, then the command after --).
grind() {
  local name=$1; shift
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  env RUST_LOG=info LOG_FORMAT=json HOST=127.0.0.1 "${env[@]}" \
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.%p" "$@" >"$out/$name.log" 2>&1 &
  pids+=($!)
}

wait_answer() { # method url
  for _ in $(seq 600); do
    curl -fs -o /dev/null -X "$1" -H 'Content-Type: application/json' --data-binary '' "$2" && return 0
    sleep 0.1
  done
  echo "[profile] $2 did not answer; logs in $out/" >&2
  exit 1
}

# N requests on one connection: curl reuses it for every URL of one invocation.
send() { # url body
  local urls=()
  for _ in $(seq "$N"); do urls+=("$1"); done
  curl -fs -X POST -H 'Content-Type: application/json' --data-binary "$2" "${urls[@]}" >/dev/null
}

# The pid listening on a port: the process under callgrind (valgrind runs it in its own process).
listening() { ss -ltnpH "sport = :$1" | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1; }
# vgdb names its pipes after $HOST, which the services read too: the same value on both sides.
zero() { HOST=127.0.0.1 callgrind_control -z "$1" >/dev/null; }
dump() { HOST=127.0.0.1 callgrind_control -d "$1" >/dev/null; }

report() { # name pid
  local file
  file=$(ls -t "$out/$1.$2".* 2>/dev/null | head -1)
  local total
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
  printf '\n[profile] %s: %s instructions per request (%s in %s requests)\n' "$1" "$((total / N))" "$total" "$N"
  callgrind_annotate --inclusive=yes "$file" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n "3,$((TOP + 2))p"
}

grind echo -- "$echo_bin" $echo_port
grind logger PORT=$logger_port RPC_PORT=$rpc_port MONGO_DB="$MONGO_DB" -- "$bin/logger"
grind broker PORT=$broker_port LOGGER_RPC_ADDR=127.0.0.1:$rpc_port AUTH_URL=http://127.0.0.1:9 MAILER_URL=http://127.0.0.1:9 \
  RATE_LIMITS=off -- "$bin/broker"
wait_answer POST http://127.0.0.1:$echo_port/
wait_answer GET http://127.0.0.1:$logger_port/ready
wait_answer POST http://127.0.0.1:$broker_port/
echo_pid=$(listening $echo_port) logger_pid=$(listening $logger_port) broker_pid=$(listening $broker_port)
log='{"action":"log","log":{"name":"profile","data":"load test"}}'
# Warm up (connections, pools, first-use initialisation), then count.
send http://127.0.0.1:$broker_port/handle "$log"

for pid in "$echo_pid" "$broker_pid"; do zero "$pid"; done
send http://127.0.0.1:$echo_port/ ''
send http://127.0.0.1:$broker_port/ ''
for pid in "$echo_pid" "$broker_pid"; do dump "$pid"; done
report echo "$echo_pid"
report broker "$broker_pid"
mv "$(ls -t "$out"/broker."$broker_pid".* | head -1)" "$out/broker-root.callgrind"

for pid in "$broker_pid" "$logger_pid"; do zero "$pid"; done
send http://127.0.0.1:$broker_port/handle "$log"
for pid in "$broker_pid" "$logger_pid"; do dump "$pid"; done
report broker "$broker_pid"
report logger "$logger_pid"
# The entries it stored are not left on the shared server (the probe drops only bench* names).
probe="$target/release/examples/insert_many"
[ -x "$probe" ] && "$probe" drop "$MONGO_DB" >/dev/null 2>&1 || true
