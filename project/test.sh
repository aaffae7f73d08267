#!/usr/bin/env bash
# Runs every test of the project on this machine, installing and starting what is missing:
#   1. the infrastructure (PostgreSQL, RabbitMQ, a MongoDB wire server, the SMTP catcher), the
#      browser for the browser test (Chromium, chromedriver) and the check tools (docker-compose,
#      kubernetes-validate, schemathesis);
#   2. formatting and lints;
#   3. every crate's unit and integration tests against the real servers;
#   4. the release build, exactly as the Dockerfile builds each service, and the whole-system
#      benchmark's quick mode on those binaries (every path answers 2xx; no speed judged);
#   5. the whole stack started from those binaries, schemathesis against the broker's OpenAPI, then
#      the end-to-end, browser and deployment tests.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n\033[1m[test] %s\033[0m\n' "$*"; }

step "infrastructure"
bash project/infra.sh up
# The crates' /metrics tests run `promtool check metrics`: before them, not in the background.
bash project/infra.sh promtool
# The browser and the check tools are needed only by the last step: they install (mostly
# downloads) while the crates compile, and the last step waits for them.
mkdir -p .local/log
tools_log=.local/log/test-tools.log
(bash project/infra.sh browser && bash project/infra.sh tools) >"$tools_log" 2>&1 &
tools_pid=$!

if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo nextest run --workspace --exclude system-tests --locked --no-fail-fast

step "release build (the Dockerfile's cargo command, per service)"
bash project/deploy-check.sh build

step "browser and check tools (installed in the background, $tools_log)"
if ! wait "$tools_pid"; then
  cat "$tools_log" >&2
  echo "[test] installing the browser or the check tools failed (above)" >&2
  exit 1
fi
tail -n 3 "$tools_log"

step "the whole-system benchmark, quick: every path answers without errors (wrk is a check tool)"
bash project/bench/run.sh --quick

step "the stack, from the release binaries"
trap 'bash project/stack.sh stop' EXIT
# Loopback is a trusted proxy, so that schemathesis is a client of its own (see schemathesis.sh).
TRUSTED_PROXIES=127.0.0.1 bash project/stack.sh up --detach
step "schemathesis against the broker's OpenAPI (every check, about a minute)"
# A schemathesis failure fails the run after the system tests, so one run reports both.
schemathesis_failed=0
bash project/schemathesis.sh || schemathesis_failed=1
step "end-to-end, browser and deployment tests"
cargo nextest run -p system-tests --locked --no-fail-fast
if [ "$schemathesis_failed" -ne 0 ]; then
  echo "[test] schemathesis found failures (above)" >&2
  exit 1
fi
