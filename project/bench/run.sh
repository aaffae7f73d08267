#!/usr/bin/env bash
# The whole-system benchmark (issue 17): req/s, p50/p99 and the CPU time per request of every
# process on each path, measured in one run on this machine.
#
#   bash project/bench/run.sh           # the full run (about 4 minutes): rewrites the whole-system
#                                       # section of project/BENCHMARKS.md
#   bash project/bench/run.sh --quick   # each path for 1 s at 8 clients, 300 events, 2,000 store
#                                       # entries: exits non-zero unless every answer was 2xx and
#                                       # every event was stored; judges no speed, writes nothing
#   bash project/bench/run.sh --cost    # what metrics and tracing cost per request (project/bench/
#                                       # cost.py, about 3 minutes): rewrites its section of
#                                       # BENCHMARKS.md
#
# Options (after the above): --duration 10s (per row), --clients 8,64, --events 20000 (end to
# end), --entries 20000 (the store's insert_many), --rust-log info and --log-format json (the
# services' defaults), --no-write (print the table only).
#
# It starts the five services (release builds, as `project/deploy-check.sh build` leaves them in
# target/release), the bare actix-web echo (broker/examples/echo.rs) and an SMTP catcher (maildev,
# from .local/npm) of its own on ports 18280-18289, with RabbitMQ exchange bench_logs_topic and
# queues bench_logs and bench_mail, MongoDB databases bench_logs and bench_store and PostgreSQL
# database bench_users (all emptied at the start), on the machine's PostgreSQL, RabbitMQ and
# MongoDB wire server (`bash project/infra.sh up`; never restarted). Needs wrk (`bash
# project/infra.sh tools`). The services' logs are left in .local/bench/. The measurement itself
# is project/bench/bench.py (Python 3, standard library only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

quick=0 cost=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --cost) cost=1 ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
command -v wrk >/dev/null 2>&1 || { echo "[bench] wrk not found: bash project/infra.sh tools installs it" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
# The services exactly as the Dockerfile builds them: after project/test.sh's release build step
# this finds them up to date.
bash project/deploy-check.sh build
# The echo floor and the store probe are examples, which build with the crates' dev-dependencies:
# in release that is a second build of the workspace crates. The quick run judges no speed, so it
# takes them from the debug build that the tests leave (`cargo test` builds every example), and
# builds them in debug only when they are missing.
if [ "$quick" -eq 1 ]; then
  dir=debug
  if [ ! -x "$target/debug/examples/echo" ] || [ ! -x "$target/debug/examples/insert_many" ]; then
    cargo build --locked -p broker --example echo -p logger --example insert_many
  fi
else
  dir=release
  cargo build --release --locked -p broker --example echo -p logger --example insert_many
fi

if [ "$cost" -eq 1 ]; then
  args=()
  for arg in "$@"; do [ "$arg" = --cost ] || args+=("$arg"); done
  exec python3 project/bench/cost.py --bin-dir "$target/release" --echo "$target/release/examples/echo" \
    --probe "$target/release/examples/insert_many" "${args[@]}"
fi
exec python3 project/bench/bench.py --bin-dir "$target/release" \
  --echo "$target/$dir/examples/echo" --probe "$target/$dir/examples/insert_many" "$@"
