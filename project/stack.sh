#!/usr/bin/env bash
# The whole system on this machine: infrastructure, the five services and the test page.
#
#   bash project/stack.sh               start everything in the foreground; Ctrl-C stops it
#   bash project/stack.sh up --detach   start everything in the background, return once ready
#   bash project/stack.sh stop          stop what either form started
#   bash project/stack.sh status        each process and whether it is ready (exit 1 if one is not)
#   bash project/stack.sh logs          follow every service's log, prefixed with its name
#   bash project/stack.sh env           the settings each process gets, one NAME: VAR=value a line
#
# `up` starts the infrastructure (project/infra.sh: PostgreSQL, RabbitMQ, a MongoDB wire
# server, the SMTP catcher; not Chromium, which only the browser test needs), creates the
# stack's PostgreSQL database, builds the release binaries, starts each service wired to the
# others (the ports and names of project/wiring.env), prefixes each process's log lines with its
# name, waits until every /ready answers, and prints the URLs. A service that exits while the
# stack runs is reported at once. Logs and pids live under .local/stack/.
#
# Settings (environment):
#   STACK_PORT_OFFSET=N     a second stack beside the first, sharing nothing but the servers:
#                           N is added to every port, `_N` suffixed to the RabbitMQ exchange and
#                           queue and to the MongoDB and PostgreSQL databases, and the stack runs
#                           a mail catcher of its own (SMTP and web ports + N); its state lives
#                           under .local/stack-N/
#   STACK_HOST=0.0.0.0      listen on every interface (default 127.0.0.1: this machine only)
#   STACK_PROFILE=release   the cargo profile the services are built and run with: `dev` reuses
#                           the debug build (quicker to build on a developer's machine; slower)
#   STACK_PROMETHEUS=1      also run a Prometheus (Debian's `prometheus`: `project/infra.sh tools`)
#                           scraping the six services' GET /metrics every 5 s, on port 9090 (+ N),
#                           its data under the stack's directory; `up` prints its URL
#   STACK_READY_TIMEOUT=90  seconds the services may take to answer /ready
#   STACK_STOP_TIMEOUT=20   seconds each may take to stop before it is killed
#   LOG_FORMAT=compact      compact (one line per event), pretty or json
#   Anything else set in this shell (RUST_LOG, BCRYPT_COST, MAIL_*, ...) reaches the services;
#   DSN, MONGO_DB, EXCHANGE, QUEUE_NAME, MAIL_EXCHANGE, MAIL_QUEUE, MAIL_PORT and MAILCATCHER_URL set there replace the
#   stack's own.
set -euo pipefail

LOG_TAG=stack
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$REPO_ROOT"
OFFSET="${STACK_PORT_OFFSET:-0}"
[[ "$OFFSET" =~ ^[0-9]+$ ]] || { echo "[stack] ERROR: STACK_PORT_OFFSET must be a number" >&2; exit 2; }
for port in "${WIRING[@]}"; do
  [[ "$port" =~ ^[0-9]+$ ]] && [ $((port + OFFSET)) -gt 65535 ] &&
    { echo "[stack] ERROR: STACK_PORT_OFFSET=$OFFSET moves port $port past 65535" >&2; exit 2; }
done
if [ "$OFFSET" -eq 0 ]; then STACK_DIR="$ROOT/.local/stack"; else STACK_DIR="$ROOT/.local/stack-$OFFSET"; fi
SUPERVISOR_PID="$STACK_DIR/supervisor.pid"
READY_MARK="$STACK_DIR/ready"
FAILURE="$STACK_DIR/start-failure.txt"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${STACK_STOP_TIMEOUT:-20}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${STACK_PROFILE:-release}"
case "$PROFILE" in
  release) PROFILE_DIR=release ;;
  dev) PROFILE_DIR=debug ;;
  *) echo "[stack] ERROR: STACK_PROFILE must be release or dev" >&2; exit 2 ;;
esac
LISTEN_HOST="${STACK_HOST:-127.0.0.1}"
# Colour the name prefixes on a terminal only (tested once: `$(...)` runs with a pipe as stdout).
if [ -t 1 ]; then TTY=1; else TTY=0; fi

# A port of the table, moved by the offset.
port_of() { echo $((WIRING[$1] + OFFSET)); }
# A name of the table, suffixed with the offset (the first stack keeps the plain names).
name_of() { if [ "$OFFSET" -eq 0 ]; then echo "${WIRING[$1]}"; else echo "${WIRING[$1]}_$OFFSET"; fi; }

BROKER_PORT="$(port_of BROKER_PORT)"
FRONTEND_PORT="$(port_of FRONTEND_PORT)"
AUTH_PORT="$(port_of AUTHENTICATION_PORT)"
LOGGER_PORT="$(port_of LOGGER_PORT)"
LOGGER_RPC_PORT="$(port_of LOGGER_RPC_PORT)"
MAILER_PORT="$(port_of MAILER_PORT)"
LISTENER_PORT="$(port_of LISTENER_PORT)"
SMTP_PORT="$(port_of SMTP_PORT)"
MAILCATCHER_PORT="$(port_of MAILCATCHER_PORT)"
# The servers are shared; what the stack keeps in them is its own.
STACK_EXCHANGE="${EXCHANGE:-$(name_of EXCHANGE)}"
STACK_QUEUE="${QUEUE_NAME:-$(name_of QUEUE_NAME)}"
STACK_MAIL_EXCHANGE="${MAIL_EXCHANGE:-$(name_of MAIL_EXCHANGE)}"
STACK_MAIL_QUEUE="${MAIL_QUEUE:-$(name_of MAIL_QUEUE)}"
STACK_MONGO_DB="${MONGO_DB:-$(name_of MONGO_DB)}"
STACK_POSTGRES_DB="$(name_of POSTGRES_DB)"
STACK_DSN="${DSN:-postgres://${WIRING[POSTGRES_USER]}:${WIRING[POSTGRES_PASSWORD]}@127.0.0.1:${WIRING[POSTGRES_PORT]}/$STACK_POSTGRES_DB}"
STACK_MAIL_PORT="${MAIL_PORT:-$SMTP_PORT}"
MAILCATCHER_URL="${MAILCATCHER_URL:-http://localhost:$MAILCATCHER_PORT}"
# Not in wiring.env: no service talks to it, it talks to them.
PROMETHEUS_PORT=$((9090 + OFFSET))

# name:port, in start order (dependencies first: the broker's /ready needs the others). The
# first stack's mail catcher is infra.sh's; a second one runs its own, as one of its processes.
SERVICES=()
[ "$OFFSET" -eq 0 ] || SERVICES+=("mailcatcher:$MAILCATCHER_PORT")
SERVICES+=(
  "authentication:$AUTH_PORT" "logger:$LOGGER_PORT" "mailer:$MAILER_PORT"
  "listener:$LISTENER_PORT" "broker:$BROKER_PORT" "frontend:$FRONTEND_PORT"
)
# Opt-in; one started by `up` stays in the list for `stop`/`status` run without the setting.
if [ "${STACK_PROMETHEUS:-0}" = 1 ] || [ -f "$STACK_DIR/prometheus.pid" ]; then
  SERVICES+=("prometheus:$PROMETHEUS_PORT")
fi

# How to name this stack in a hint: a second one's commands need its offset.
if [ "$OFFSET" -eq 0 ]; then SELF="bash project/stack.sh"; else SELF="STACK_PORT_OFFSET=$OFFSET bash project/stack.sh"; fi

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { if [ -f "$1" ]; then cat "$1"; fi; }
supervisor_pid() { read_pid "$SUPERVISOR_PID"; }

# What answers 200 once a process is ready: the services' /ready, maildev's /healthz.
ready_path() {
  case "$1" in mailcatcher) echo /healthz ;; prometheus) echo /-/ready ;; *) echo /ready ;; esac
}
is_ready() { http_ok "$2" "$(ready_path "$1")"; }

# The settings of one process: its port, and where it finds the others.
service_env() {
  local name="$1" port="$2"
  case "$name" in mailcatcher | prometheus) return 0 ;; esac
  printf '%s\n' "PORT=$port" "HOST=$LISTEN_HOST" "LOG_FORMAT=${LOG_FORMAT:-compact}"
  case "$name" in
    authentication) printf '%s\n' "DSN=$STACK_DSN" ;;
    logger) printf '%s\n' "RPC_PORT=$LOGGER_RPC_PORT" "MONGO_DB=$STACK_MONGO_DB" ;;
    mailer)
      printf '%s\n' "MAIL_PORT=$STACK_MAIL_PORT" "MAIL_EXCHANGE=$STACK_MAIL_EXCHANGE" "MAIL_QUEUE=$STACK_MAIL_QUEUE"
      ;;
    listener)
      printf '%s\n' "LOGGER_RPC_ADDR=127.0.0.1:$LOGGER_RPC_PORT" "EXCHANGE=$STACK_EXCHANGE" "QUEUE_NAME=$STACK_QUEUE"
      ;;
    broker)
      printf '%s\n' "AUTH_URL=http://127.0.0.1:$AUTH_PORT" "LOGGER_RPC_ADDR=127.0.0.1:$LOGGER_RPC_PORT" \
        "MAILER_URL=http://127.0.0.1:$MAILER_PORT" "EXCHANGE=$STACK_EXCHANGE" "QUEUE_NAME=$STACK_QUEUE" \
        "MAIL_EXCHANGE=$STACK_MAIL_EXCHANGE" "MAIL_QUEUE=$STACK_MAIL_QUEUE" \
        "CORS_ALLOWED_ORIGINS=http://localhost:$FRONTEND_PORT,http://127.0.0.1:$FRONTEND_PORT"
      ;;
    frontend) printf '%s\n' "BROKER_URL=http://localhost:$BROKER_PORT" "MAILCATCHER_URL=$MAILCATCHER_URL" ;;
  esac
}

# The command line of one process, into COMMAND.
process_command() {
  if [ "$1" = mailcatcher ]; then
    [ -f "$MAILDEV_BIN" ] || die "$MAILDEV_BIN is missing: bash project/infra.sh up installs it"
    # A fresh, empty mailbox on every start, as infra.sh's.
    rm -rf "$STACK_DIR/maildev" && mkdir -p "$STACK_DIR/maildev"
    maildev_command "$SMTP_PORT" "$MAILCATCHER_PORT" "$STACK_DIR/maildev" "$LISTEN_HOST"
    COMMAND=("${MAILDEV_COMMAND[@]}")
  elif [ "$1" = prometheus ]; then
    command -v prometheus >/dev/null 2>&1 || die "prometheus is missing: bash project/infra.sh tools installs it"
    prometheus_config >"$STACK_DIR/prometheus.yml"
    COMMAND=(prometheus "--config.file=$STACK_DIR/prometheus.yml" "--storage.tsdb.path=$STACK_DIR/prometheus-data"
      "--web.listen-address=$LISTEN_HOST:$PROMETHEUS_PORT")
  else
    COMMAND=("$TARGET_DIR/$PROFILE_DIR/$1")
    [ -x "${COMMAND[0]}" ] || die "${COMMAND[0]} is missing after the build"
  fi
}

# The stack's scrape configuration: one job per service (the name the dashboard's `job`
# variable lists), its port moved by the offset; project/prometheus/prometheus.yml is compose's.
prometheus_config() {
  local entry
  printf '%s\n' "global:" "  scrape_interval: 5s" "  scrape_timeout: 4s" "scrape_configs:"
  for entry in "${SERVICES[@]}"; do
    case "${entry%%:*}" in mailcatcher | prometheus) continue ;; esac
    printf '%s\n' "  - job_name: ${entry%%:*}" "    static_configs:" "      - targets: ['127.0.0.1:${entry##*:}']"
  done
}

# One colour per service, so interleaved logs stay readable on a terminal.
colour() {
  [ "$TTY" -eq 1 ] || return 0
  local colours=(31 32 33 34 35 36)
  printf '\033[%sm' "${colours[$(($1 % ${#colours[@]}))]}"
}

reset_colour() {
  [ "$TTY" -eq 1 ] || return 0
  printf '\033[0m'
}

declare -A PIDS=()
STOPPING=0

stop_children() {
  STOPPING=1
  trap '' INT TERM
  local name pid waited=0
  log "stopping (SIGTERM, then SIGKILL after ${STOP_TIMEOUT}s)"
  for name in "${!PIDS[@]}"; do
    if alive "${PIDS[$name]}"; then kill -TERM "${PIDS[$name]}" 2>/dev/null || true; fi
  done
  while [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
    local running=0
    for pid in "${PIDS[@]}"; do alive "$pid" && running=1; done
    [ "$running" -eq 0 ] && break
    sleep 0.1
    waited=$((waited + 1))
  done
  for name in "${!PIDS[@]}"; do
    if alive "${PIDS[$name]}"; then
      log "$name did not stop within ${STOP_TIMEOUT}s: killing it"
      kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true # the log pipes drain and end with their service
  rm -f "$READY_MARK" "$SUPERVISOR_PID" "$STACK_DIR"/*.pid
  log "stopped"
}

start_service() {
  local index="$1" name="$2" port="$3" prefix vars=() COMMAND=()
  process_command "$name"
  prefix="$(colour "$index")$(printf '%-14s' "$name")$(reset_colour)|"
  mapfile -t vars < <(service_env "$name" "$port")
  : >"$STACK_DIR/$name.log"
  # The service leads a session of its own (setsid execs: a background child is no group
  # leader), so a Ctrl-C on the terminal reaches only this script, which stops the services in
  # order. Its raw lines go to its log file, prefixed lines to the terminal; the pipe ignores
  # SIGINT so that the services' last lines still show while they shut down.
  setsid env "${vars[@]}" "${COMMAND[@]}" </dev/null \
    > >(trap '' INT; tee -a "$STACK_DIR/$name.log" | sed -u "s/^/$prefix /") 2>&1 &
  PIDS[$name]=$!
  echo "${PIDS[$name]}" >"$STACK_DIR/$name.pid"
}

# Waits for every /ready; a service that exits meanwhile fails the start with its last lines.
wait_until_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) entry name port pending
  while :; do
    pending=()
    for entry in "${SERVICES[@]}"; do
      name="${entry%%:*}" port="${entry##*:}"
      if ! alive "${PIDS[$name]}"; then
        local status=0
        wait "${PIDS[$name]}" 2>/dev/null || status=$?
        {
          log "!!! $name exited during start-up (status $status); its last lines:"
          tail -n 20 "$STACK_DIR/$name.log" || true
        } 2>&1 | tee "$FAILURE" >&2
        return 1
      fi
      is_ready "$name" "$port" || pending+=("$name")
    done
    [ "${#pending[@]}" -eq 0 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      {
        log "!!! not ready after ${READY_TIMEOUT}s: ${pending[*]}"
        for name in "${pending[@]}"; do
          port=""
          for entry in "${SERVICES[@]}"; do [ "${entry%%:*}" = "$name" ] && port="${entry##*:}"; done
          log "$name: GET $(ready_path "$name") answers: $(http_get "$port" "$(ready_path "$name")" | sed -n '1p;$p' | tr '\n' ' ' || true)"
          log "$name: last lines of $STACK_DIR/$name.log"
          tail -n 10 "$STACK_DIR/$name.log" || true
        done
      } 2>&1 | tee "$FAILURE" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Reports any service that exits while the stack runs, until a stop is asked for.
watch_children() {
  local name
  declare -A reported=()
  while [ "$STOPPING" -eq 0 ]; do
    for name in "${!PIDS[@]}"; do
      if [ -z "${reported[$name]:-}" ] && ! alive "${PIDS[$name]}"; then
        reported[$name]=1
        local status=0
        wait "${PIDS[$name]}" 2>/dev/null || status=$?
        rm -f "$STACK_DIR/$name.pid"
        echo "$status" >"$STACK_DIR/$name.exited"
        printf '\n[stack] !!! %s EXITED (status %s); its last lines:\n' "$name" "$status" >&2
        tail -n 20 "$STACK_DIR/$name.log" >&2 || true
        printf '[stack] !!! the rest keeps running; Ctrl-C or "%s stop" stops all\n\n' "$SELF" >&2
      fi
    done
    sleep 1
  done
}

cmd_up_foreground() {
  local started=$SECONDS entry
  mkdir -p "$STACK_DIR"
  if alive "$(supervisor_pid)"; then
    die "the stack already runs (supervisor pid $(supervisor_pid)); stop it first: $SELF stop"
  fi
  local taken=("${SERVICES[@]}" "logger-rpc:$LOGGER_RPC_PORT")
  [ "$OFFSET" -eq 0 ] || taken+=("mailcatcher-smtp:$SMTP_PORT")
  for entry in "${taken[@]}"; do
    if port_up "${entry##*:}"; then
      die "port ${entry##*:} (${entry%%:*}) is already taken by another process; stop it, or run a second stack beside it with STACK_PORT_OFFSET=10000"
    fi
  done
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs), then run this again"
  echo $$ >"$SUPERVISOR_PID"
  rm -f "$READY_MARK" "$FAILURE" "$STACK_DIR"/*.exited

  bash "$ROOT/project/infra.sh" up
  # The stack's own database (the first stack's is infra.sh's, which `up` has just ensured).
  if [ -z "${DSN:-}" ] && [ "$OFFSET" -ne 0 ]; then bash "$ROOT/project/infra.sh" database "$STACK_POSTGRES_DB"; fi
  log "building the $PROFILE binaries"
  (cd "$ROOT" && cargo build --profile "$PROFILE" --locked --workspace --bins)

  # The services' own lines stay free of colour codes: the log files are for grep and less.
  export NO_COLOR=1
  trap 'stop_children; exit 130' INT
  trap 'stop_children; exit 143' TERM
  local index=0
  for entry in "${SERVICES[@]}"; do
    start_service "$index" "${entry%%:*}" "${entry##*:}"
    index=$((index + 1))
  done
  if ! wait_until_ready; then
    stop_children
    # Again after the shutdown lines, so that the reason is what the terminal ends with.
    printf '\n[stack] START FAILED:\n' >&2
    cat "$FAILURE" >&2
    exit 1
  fi
  date +%s >"$READY_MARK"
  local prometheus_line=""
  if [ -n "${PIDS[prometheus]:-}" ]; then
    prometheus_line="[stack]   prometheus    http://localhost:$PROMETHEUS_PORT   (every service's GET /metrics)"$'\n'
  fi
  cat <<EOF

[stack] ready in $((SECONDS - started))s
[stack]   test page     http://localhost:$FRONTEND_PORT
[stack]   broker        http://localhost:$BROKER_PORT   (POST /handle, GET /openapi.json)
[stack]   mail catcher  $MAILCATCHER_URL
$prometheus_line[stack]   logs          $STACK_DIR/<service>.log
[stack] Ctrl-C (or \`$SELF stop\`) stops everything.

EOF
  watch_children
}

cmd_up_detached() {
  mkdir -p "$STACK_DIR"
  if alive "$(supervisor_pid)"; then
    [ -f "$READY_MARK" ] && { log "already running and ready"; return 0; }
    die "a stack is starting or running (supervisor pid $(supervisor_pid)); stop it first: $SELF stop"
  fi
  rm -f "$READY_MARK" "$FAILURE"
  local started=$SECONDS
  setsid nohup bash "$ROOT/project/stack.sh" up </dev/null >"$STACK_DIR/stack.log" 2>&1 &
  local pid=$!
  log "starting in the background (pid $pid, log $STACK_DIR/stack.log)"
  # The build may take minutes on a fresh machine; the supervisor bounds the wait for /ready.
  while [ ! -f "$READY_MARK" ]; do
    if ! alive "$pid"; then
      if [ -s "$FAILURE" ]; then
        log "the stack failed to start (whole log: $STACK_DIR/stack.log):"
        cat "$FAILURE" >&2
      else
        log "the stack failed to start; the end of $STACK_DIR/stack.log:"
        tail -n 40 "$STACK_DIR/stack.log" >&2 || true
      fi
      return 1
    fi
    sleep 0.5
  done
  log "ready in $((SECONDS - started))s: test page http://localhost:$FRONTEND_PORT," \
    "broker http://localhost:$BROKER_PORT, mail catcher $MAILCATCHER_URL"
  if [ "${STACK_PROMETHEUS:-0}" = 1 ]; then log "prometheus: http://localhost:$PROMETHEUS_PORT"; fi
  log "logs: $SELF logs (or $STACK_DIR/<service>.log); stop: $SELF stop"
}

cmd_stop() {
  local pid
  pid="$(supervisor_pid)"
  if ! alive "$pid"; then
    log "nothing to stop"
    rm -f "$SUPERVISOR_PID" "$READY_MARK"
    return 0
  fi
  kill -TERM "$pid"
  local waited=0
  while alive "$pid" && [ "$waited" -lt $(((STOP_TIMEOUT + 10) * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  alive "$pid" && die "the supervisor (pid $pid) did not stop"
  local exited name
  for exited in "$STACK_DIR"/*.exited; do
    [ -e "$exited" ] || continue
    name="$(basename "$exited" .exited)"
    log "!!! $name had exited on its own before the stop (status $(cat "$exited")): see $STACK_DIR/$name.log"
  done
  log "stopped"
}

cmd_status() {
  local entry name port pid state all_ready=0
  log "supervisor: $(alive "$(supervisor_pid)" && echo "running (pid $(supervisor_pid))" || echo "not running")"
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}" port="${entry##*:}"
    pid="$(read_pid "$STACK_DIR/$name.pid")"
    if is_ready "$name" "$port"; then state="ready"; elif port_up "$port"; then state="up, NOT ready"; else state="down"; fi
    [ "$state" = "ready" ] || all_ready=1
    if [ -f "$STACK_DIR/$name.exited" ] && alive "$(supervisor_pid)"; then
      state="EXITED (status $(cat "$STACK_DIR/$name.exited"))"
    fi
    printf '[stack]   %-14s :%s  %-22s %s\n' "$name" "$port" "$state" "$(if alive "$pid"; then echo "pid $pid"; fi)"
  done
  return "$all_ready"
}

cmd_logs() {
  local entry files=()
  for entry in "${SERVICES[@]}"; do
    [ -f "$STACK_DIR/${entry%%:*}.log" ] && files+=("$STACK_DIR/${entry%%:*}.log")
  done
  [ "${#files[@]}" -gt 0 ] || die "no logs under $STACK_DIR yet; start the stack first"
  # tail -v names each file in a "==> path <==" header line before its lines.
  tail -v -n 20 -F "${files[@]}" 2>/dev/null | awk -v tty="$TTY" '
    /^==> .* <==$/ { name = $2; sub(/.*\//, "", name); sub(/\.log$/, "", name); if (!(name in hue)) hue[name] = 31 + (n++ % 6); next }
    /^$/ { next }
    { if (tty) printf "\033[%dm%-14s\033[0m| %s\n", hue[name], name, $0; else printf "%-14s| %s\n", name, $0; fflush() }'
}

# Each process's settings, as `up` would give them.
cmd_env() {
  local entry
  for entry in "${SERVICES[@]}"; do
    service_env "${entry%%:*}" "${entry##*:}" | sed "s/^/${entry%%:*}: /"
  done
}

usage="usage: bash project/stack.sh [up [--detach]|stop|status|logs|env]"
case "${1:-up}" in
  up)
    case "${2:-}" in
      --detach|-d) cmd_up_detached ;;
      "") cmd_up_foreground ;;
      *) die "unknown option ${2}; $usage" ;;
    esac
    ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  env) cmd_env ;;
  -h|--help|help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command ${1}; $usage" ;;
esac
