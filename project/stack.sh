#!/usr/bin/env bash
# The whole system on this machine: infrastructure, the five services and the test page.
#
#   bash project/stack.sh               start everything in the foreground; Ctrl-C stops it
#   bash project/stack.sh up --detach   start everything in the background, return once ready
#   bash project/stack.sh stop          stop what either form started
#   bash project/stack.sh status        each process and whether it is ready
#
# `up` starts the infrastructure (project/infra.sh: PostgreSQL, RabbitMQ, a MongoDB wire
# server, the SMTP catcher), builds the release binaries, starts each service with its default
# settings (the local ports of DESIGN.md; any variable set in this shell, e.g. RUST_LOG or
# BCRYPT_COST, passes through), prefixes each process's log lines with its name, waits until
# every /ready answers, and prints the URLs. A service that exits while the stack runs is
# reported at once. Logs and pids live under .local/stack/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="$ROOT/.local/stack"
SUPERVISOR_PID="$STACK_DIR/supervisor.pid"
READY_MARK="$STACK_DIR/ready"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${STACK_STOP_TIMEOUT:-20}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# name:port, in start order (dependencies first: the broker's /ready needs the others).
SERVICES=(authentication:8083 logger:8084 mailer:8085 listener:8086 broker:8080 frontend:8081)

log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { if [ -f "$1" ]; then cat "$1"; fi; }
supervisor_pid() { read_pid "$SUPERVISOR_PID"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
is_ready() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$1/ready" 2>/dev/null; }

# One colour per service, so interleaved logs stay readable on a terminal.
colour() {
  [ -t 1 ] || return 0
  local colours=(31 32 33 34 35 36)
  printf '\033[%sm' "${colours[$(($1 % ${#colours[@]}))]}"
}

declare -A PIDS=()
STOPPING=0

stop_children() {
  STOPPING=1
  local name pid waited=0
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
  rm -f "$READY_MARK" "$SUPERVISOR_PID" "$STACK_DIR"/*.pid
  log "stopped"
}

start_service() {
  local index="$1" name="$2" port="$3" bin="$TARGET_DIR/release/$2"
  local prefix
  prefix="$(colour "$index")$(printf '%-14s' "$name")$( [ -t 1 ] && printf '\033[0m')|"
  : >"$STACK_DIR/$name.log"
  # Raw lines to the service's log file, prefixed lines to the terminal.
  PORT="$port" "$bin" > >(tee -a "$STACK_DIR/$name.log" | sed -u "s/^/$prefix /") 2>&1 &
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
        log "$name exited during start-up; its last lines:"
        tail -n 20 "$STACK_DIR/$name.log" >&2 || true
        return 1
      fi
      is_ready "$port" || pending+=("$name")
    done
    [ "${#pending[@]}" -eq 0 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "not ready after ${READY_TIMEOUT}s: ${pending[*]}"
      for name in "${pending[@]}"; do
        log "$name: last lines of $STACK_DIR/$name.log"
        tail -n 10 "$STACK_DIR/$name.log" >&2 || true
      done
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
        printf '\n[stack] !!! %s EXITED (status %s); its last lines:\n' "$name" "$status" >&2
        tail -n 20 "$STACK_DIR/$name.log" >&2 || true
        printf '[stack] !!! the rest keeps running; Ctrl-C or "bash project/stack.sh stop" stops all\n\n' >&2
      fi
    done
    sleep 1
  done
}

cmd_up_foreground() {
  local started=$SECONDS
  mkdir -p "$STACK_DIR"
  if alive "$(supervisor_pid)"; then
    die "the stack already runs (supervisor pid $(supervisor_pid)); stop it first: bash project/stack.sh stop"
  fi
  local entry
  for entry in "${SERVICES[@]}"; do
    port_open "${entry##*:}" && die "port ${entry##*:} (${entry%%:*}) is already taken by another process"
  done
  echo $$ >"$SUPERVISOR_PID"
  rm -f "$READY_MARK"

  bash "$ROOT/project/infra.sh" up
  log "building the release binaries"
  (cd "$ROOT" && cargo build --release --locked --workspace --bins)

  trap 'stop_children; exit 130' INT
  trap 'stop_children; exit 143' TERM
  local index=0
  for entry in "${SERVICES[@]}"; do
    start_service "$index" "${entry%%:*}" "${entry##*:}"
    index=$((index + 1))
  done
  if ! wait_until_ready; then
    stop_children
    exit 1
  fi
  date +%s >"$READY_MARK"
  cat <<EOF

[stack] ready in $((SECONDS - started))s
[stack]   test page     http://localhost:8081
[stack]   broker        http://localhost:8080   (POST /handle, GET /openapi.json)
[stack]   mail catcher  http://localhost:8025
[stack]   logs          $STACK_DIR/<service>.log
[stack] Ctrl-C (or \`bash project/stack.sh stop\`) stops everything.

EOF
  watch_children
}

cmd_up_detached() {
  mkdir -p "$STACK_DIR"
  if alive "$(supervisor_pid)"; then
    [ -f "$READY_MARK" ] && { log "already running and ready"; return 0; }
    die "a stack is starting or running (supervisor pid $(supervisor_pid)); stop it first: bash project/stack.sh stop"
  fi
  rm -f "$READY_MARK"
  local started=$SECONDS
  setsid nohup bash "$ROOT/project/stack.sh" up </dev/null >"$STACK_DIR/stack.log" 2>&1 &
  local pid=$!
  log "starting in the background (pid $pid, log $STACK_DIR/stack.log)"
  # The build may take minutes on a fresh machine; the supervisor bounds the wait for /ready.
  while [ ! -f "$READY_MARK" ]; do
    if ! alive "$pid"; then
      log "the stack failed to start; the end of $STACK_DIR/stack.log:"
      tail -n 40 "$STACK_DIR/stack.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "ready in $((SECONDS - started))s: test page http://localhost:8081, broker http://localhost:8080, mail catcher http://localhost:8025"
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
  log "stopped"
}

cmd_status() {
  local entry name port pid state
  log "supervisor: $(alive "$(supervisor_pid)" && echo "running (pid $(supervisor_pid))" || echo "not running")"
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}" port="${entry##*:}"
    pid="$(read_pid "$STACK_DIR/$name.pid")"
    if is_ready "$port"; then state="ready"; elif port_open "$port"; then state="up, NOT ready"; else state="down"; fi
    printf '[stack]   %-14s :%s  %-14s %s\n' "$name" "$port" "$state" "$(if alive "$pid"; then echo "pid $pid"; fi)"
  done
}

case "${1:-up}" in
  up)
    case "${2:-}" in
      --detach|-d) cmd_up_detached ;;
      "") cmd_up_foreground ;;
      *) die "unknown option ${2}; usage: bash project/stack.sh [up [--detach]|stop|status]" ;;
    esac
    ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command ${1}; usage: bash project/stack.sh [up [--detach]|stop|status]" ;;
esac
