#!/usr/bin/env bash
# schemathesis against a running stack's broker: every check (`--checks all`) over the broker's
# own /openapi.json, within a time budget, signed in as the seeded admin so that the protected
# actions are exercised too. Exits non-zero on any failure.
#
#   bash project/schemathesis.sh        against the stack of STACK_PORT_OFFSET (default 0), which
#                                       must be up (`bash project/stack.sh up --detach`)
#
# Settings (environment):
#   STACK_PORT_OFFSET=N          the stack to test (as for stack.sh)
#   SCHEMATHESIS_MAX_TIME=60     seconds for the whole run (phases repeat until it is spent)
#   SCHEMATHESIS_SEED=N          a seed, to replay a run
#   SCHEMATHESIS_RATE=9/s        requests per second, below the broker's per-client rate (600 a
#                                minute by default), so that its answers are more than 429s
#   SCHEMATHESIS_CLIENT=192.0.2.10  the client address it claims in X-Forwarded-For: a stack
#                                started with TRUSTED_PROXIES=127.0.0.1 (as test.sh starts it)
#                                counts its requests and failed logins under that address, so the
#                                penalties of its random logins never fall on other local clients
#                                (the end-to-end tests after it sign in from 127.0.0.1)
# Reports (JUnit, and a pytest file reproducing failures) go to .local/schemathesis[-N]/; the
# checks' settings are in project/schemathesis.toml.
# schemathesis comes from `bash project/infra.sh tools`. The token is never printed: it is
# passed as a header, which schemathesis masks in its output.
set -euo pipefail

LOG_TAG=schemathesis
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OFFSET="${STACK_PORT_OFFSET:-0}"
[[ "$OFFSET" =~ ^[0-9]+$ ]] || die "STACK_PORT_OFFSET must be a number"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-60}"
RATE="${SCHEMATHESIS_RATE:-9/s}"
CLIENT="${SCHEMATHESIS_CLIENT:-192.0.2.10}"
BROKER_PORT=$((WIRING[BROKER_PORT] + OFFSET))
BROKER_URL="http://127.0.0.1:$BROKER_PORT"
if [ "$OFFSET" -eq 0 ]; then REPORT_DIR="$LOCAL_DIR/schemathesis"; else REPORT_DIR="$LOCAL_DIR/schemathesis-$OFFSET"; fi
SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/schemathesis"
[ -x "$SCHEMATHESIS" ] || die "$SCHEMATHESIS is missing: bash project/infra.sh tools installs it"
http_ok "$BROKER_PORT" /ready || die "no ready broker at $BROKER_URL: bash project/stack.sh up --detach"

# The `auth` action's token (`data.token`), read with the venv's Python: no curl or jq needed.
TOKEN="$("$SCHEMATHESIS_VENV/bin/python" - "$BROKER_URL/handle" "$CLIENT" <<'PY'
import json, sys, urllib.request
body = json.dumps({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}).encode()
headers = {"Content-Type": "application/json", "X-Forwarded-For": sys.argv[2]}
request = urllib.request.Request(sys.argv[1], body, headers)
with urllib.request.urlopen(request, timeout=10) as answer:
    print(json.load(answer)["data"]["token"])
PY
)" || die "cannot sign in as admin@example.com at $BROKER_URL"

mkdir -p "$REPORT_DIR"
args=(run "$BROKER_URL/openapi.json" --url "$BROKER_URL" --checks all --max-time "$MAX_TIME"
  --request-timeout 15 --rate-limit "$RATE"
  --header "Authorization: Bearer $TOKEN" --header "X-Forwarded-For: $CLIENT"
  --report junit,pytest --report-dir "$REPORT_DIR")
[ -z "${SCHEMATHESIS_SEED:-}" ] || args+=(--seed "$SCHEMATHESIS_SEED")
log "schemathesis $("$SCHEMATHESIS" --version | awk '{print $NF}') against $BROKER_URL, every check, ${MAX_TIME}s (reports: $REPORT_DIR)"
# From the report directory: schemathesis keeps its cache of failing cases (replayed first on the
# next run) in ./.schemathesis, which belongs there and not in the checkout.
cd "$REPORT_DIR"
NO_COLOR=1 "$SCHEMATHESIS" --config-file "$LIB_DIR/schemathesis.toml" "${args[@]}"
