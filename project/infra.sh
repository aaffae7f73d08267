#!/usr/bin/env bash
# Local infrastructure launcher for the microservices system.
#
#   project/infra.sh [up]   install what is missing, start what is not running (idempotent)
#   project/infra.sh status one line per component
#   project/infra.sh stop   stop only what this script started (mongo wire server, maildev)
#   project/infra.sh tools  install the deployment/bench tools (idempotent): docker-compose and
#                           wrk (apt), kubernetes-validate (PyPI, into <repo>/.local/venv)
#
# Components and ports (all on 127.0.0.1):
#   PostgreSQL 5432  (system apt package, started with pg_ctlcluster; db "users",
#                     user postgres / password "password")
#   RabbitMQ   5672  (system apt package, rabbitmq-server -detached; guest/guest)
#   MongoDB    27017 (SecantusDB wire server in <repo>/.local/venv; skipped when
#                     MONGO_URL points somewhere other than localhost:27017)
#   SMTP       1025  + web UI / JSON API 8025 (maildev in <repo>/.local/npm)
#   Chromium + chromedriver at /usr/bin/chromium, /usr/bin/chromedriver (nothing to start)
#
# Anything already answering on its port is reused and never stopped by `stop`.
# Everything this script creates lives under <repo>/.local/.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
LOCAL_DIR="$REPO_ROOT/.local"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/log"
VENV_DIR="$LOCAL_DIR/venv"
NPM_DIR="$LOCAL_DIR/npm"
MONGO_DATA="$LOCAL_DIR/mongo"
MAILDEV_DATA="$LOCAL_DIR/maildev"

HOST=127.0.0.1
PG_PORT=5432
RABBIT_PORT=5672
MONGO_PORT=27017
SMTP_PORT=1025
MAILDEV_WEB_PORT=8025

SECANTUS_VERSION=0.7.0b3
KUBERNETES_VALIDATE_VERSION=1.37.0
MAILDEV_VERSION=2.2.1
PG_PASSWORD=password
PG_DB=users

WAIT_SECS="${INFRA_WAIT_SECS:-60}"
RABBIT_WAIT_SECS="${INFRA_RABBIT_WAIT_SECS:-90}"
PYTHON="${PYTHON:-python3}"

export DEBIAN_FRONTEND=noninteractive

log()  { echo "[infra] $*"; }
warn() { echo "[infra] WARNING: $*" >&2; }
die()  { echo "[infra] ERROR: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi
as_root() { "${SUDO[@]}" "$@"; }

# --- helpers -----------------------------------------------------------------

# port_up PORT [HOST]: true if a TCP connection succeeds within ~1 s.
port_up() {
  local port="$1" host="${2:-$HOST}"
  timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" >/dev/null 2>&1
}

# wait_port NAME PORT SECS LOGFILE [PID]: poll until the port answers.
wait_port() {
  local name="$1" port="$2" secs="$3" logfile="$4" pid="${5:-}"
  local deadline=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if port_up "$port"; then
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      warn "$name (pid $pid) exited before port $port answered"
      break
    fi
    sleep 0.5
  done
  if port_up "$port"; then return 0; fi
  echo "[infra] ERROR: $name did not answer on $HOST:$port within ${secs}s" >&2
  if [ -n "$logfile" ] && [ -r "$logfile" ]; then
    echo "[infra] --- last 40 lines of $logfile ---" >&2
    tail -n 40 "$logfile" >&2 || true
    echo "[infra] --- end of log ---" >&2
  else
    echo "[infra] (no readable log at ${logfile:-<none>})" >&2
  fi
  exit 1
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# pid_of NAME PATTERN: print the pid from RUN_DIR/NAME.pid if that process is
# alive and its command line contains PATTERN (guards against pid reuse).
pid_of() {
  local name="$1" pattern="$2" pidfile="$RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

# start_bg NAME LOGFILE CMD...: start CMD detached (own session), record pid.
start_bg() {
  local name="$1" logfile="$2"; shift 2
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  {
    echo
    echo "=== $(date -Is) infra.sh starting $name: $*"
  } >>"$logfile"
  # setsid (not forking: a background child is no group leader) and nohup both
  # exec, so $! is the pid of the final process, which leads its own session.
  setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  echo "$!" >"$RUN_DIR/$name.pid"
  log "$name started (pid $!), log: $logfile"
}

# stop_pid NAME PATTERN: stop the process recorded in RUN_DIR/NAME.pid.
stop_pid() {
  local name="$1" pattern="$2" pid
  if ! pid="$(pid_of "$name" "$pattern")"; then
    if [ -f "$RUN_DIR/$name.pid" ]; then
      log "$name: stale pid file removed (process not running)"
      rm -f "$RUN_DIR/$name.pid"
    else
      log "$name: not started by infra.sh, nothing to stop"
    fi
    return 0
  fi
  log "$name: stopping pid $pid"
  # It leads its own session/process group: signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name: pid $pid still alive after 10s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$RUN_DIR/$name.pid"
  log "$name: stopped"
}

# true if MONGO_URL is unset or points at this machine's 27017.
mongo_is_local() {
  local url="${MONGO_URL:-}" hosts
  [ -z "$url" ] && return 0
  hosts="${url#*://}"       # drop scheme
  hosts="${hosts##*@}"      # drop credentials
  hosts="${hosts%%/*}"      # drop /db
  hosts="${hosts%%\?*}"     # drop ?options
  case "$hosts" in
    127.0.0.1|localhost|"127.0.0.1:$MONGO_PORT"|"localhost:$MONGO_PORT") return 0 ;;
    *) return 1 ;;
  esac
}

# --- components --------------------------------------------------------------

# First cluster version with a "main" cluster (like `ls /etc/postgresql | head -1`).
pg_cluster_version() {
  local d
  for d in /etc/postgresql/*/main; do
    if [ -d "$d" ]; then basename "$(dirname "$d")"; return 0; fi
  done
  return 0
}

pg_psql_tcp() {
  PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 \
    psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq "$@"
}

pg_ensure_db() {
  if ! command -v psql >/dev/null 2>&1; then
    warn "psql not found; cannot check database '$PG_DB' (apt package postgresql-client)"
    return 0
  fi
  if ! pg_psql_tcp -c 'select 1' >/dev/null 2>&1; then
    # Fresh Debian install: TCP uses scram/md5 and postgres has no password yet.
    if id postgres >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
      log "postgres: setting password of user postgres (TCP login failed)"
      as_root runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD '$PG_PASSWORD'" >/dev/null
    fi
    pg_psql_tcp -c 'select 1' >/dev/null 2>&1 ||
      die "postgres: cannot log in as postgres/$PG_PASSWORD over TCP on $HOST:$PG_PORT"
  fi
  if [ "$(pg_psql_tcp -c "select 1 from pg_database where datname='$PG_DB'")" = "1" ]; then
    log "postgres: database '$PG_DB' exists"
  else
    log "postgres: creating database '$PG_DB'"
    pg_psql_tcp -c "CREATE DATABASE $PG_DB" >/dev/null
  fi
}

up_postgres() {
  if port_up "$PG_PORT"; then
    log "postgres: $HOST:$PG_PORT answers -> reusing it"
  else
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(pg_cluster_version)" ]; then
      apt_install postgresql
    fi
    local ver
    ver="$(pg_cluster_version)"
    [ -n "$ver" ] || die "postgres: no cluster found under /etc/postgresql"
    local logfile="/var/log/postgresql/postgresql-$ver-main.log"
    if port_up "$PG_PORT"; then
      log "postgres: $HOST:$PG_PORT answers after install (started by the package)"
    else
      log "postgres: starting cluster $ver/main"
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
        warn "postgres: pg_ctlcluster start returned non-zero (maybe already starting)"
      wait_port postgres "$PG_PORT" "$WAIT_SECS" "$logfile"
      log "postgres: up on $HOST:$PG_PORT"
    fi
  fi
  pg_ensure_db
}

rabbit_log() {
  local f
  # shellcheck disable=SC2012  # newest log file; names are rabbit@<host>.log
  f="$(ls -t /var/log/rabbitmq/rabbit@*.log 2>/dev/null | head -1 || true)"
  echo "${f:-/var/log/rabbitmq/startup_log}"
}

up_rabbitmq() {
  if port_up "$RABBIT_PORT"; then
    log "rabbitmq: $HOST:$RABBIT_PORT answers -> reusing it"
    return 0
  fi
  if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    apt_install rabbitmq-server
  fi
  if port_up "$RABBIT_PORT"; then
    log "rabbitmq: $HOST:$RABBIT_PORT answers after install (started by the package)"
    return 0
  fi
  log "rabbitmq: starting (rabbitmq-server -detached)"
  as_root env PATH="$PATH:/usr/sbin:/sbin" rabbitmq-server -detached ||
    warn "rabbitmq: rabbitmq-server -detached returned non-zero"
  wait_port rabbitmq "$RABBIT_PORT" "$RABBIT_WAIT_SECS" "$(rabbit_log)"
  log "rabbitmq: up on $HOST:$RABBIT_PORT (guest/guest)"
}

secantus_installed() {
  [ -x "$VENV_DIR/bin/python" ] &&
    "$VENV_DIR/bin/python" - "$SECANTUS_VERSION" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as m
sys.exit(0 if m.version("secantusdb") == sys.argv[1] else 1)
EOF
}

# Installed even when another server answers on 27017: tests start instances of their own
# (a server they can stop) from this venv.
install_secantus() {
  secantus_installed && return 0
  mkdir -p "$LOG_DIR"
  if [ ! -x "$VENV_DIR/bin/python" ]; then
    log "mongo: creating venv $VENV_DIR"
    if ! "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1; then
      rm -rf "$VENV_DIR"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1 ||
        { tail -n 20 "$LOG_DIR/pip.log" >&2; die "mongo: cannot create venv"; }
    fi
  fi
  log "mongo: pip install secantusdb==$SECANTUS_VERSION (log: $LOG_DIR/pip.log)"
  "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
    "secantusdb==$SECANTUS_VERSION" >>"$LOG_DIR/pip.log" 2>&1 ||
    { tail -n 30 "$LOG_DIR/pip.log" >&2; die "mongo: pip install failed"; }
}

up_mongo() {
  install_secantus
  if ! mongo_is_local; then
    log "mongo: MONGO_URL points elsewhere -> skipping local wire server"
    return 0
  fi
  local pid
  if port_up "$MONGO_PORT"; then
    if pid="$(pid_of mongo secantus)"; then
      log "mongo: $HOST:$MONGO_PORT answers -> reusing it (started by infra.sh, pid $pid)"
    else
      log "mongo: $HOST:$MONGO_PORT answers -> reusing it (external)"
    fi
    return 0
  fi
  local logfile="$LOG_DIR/mongo.log"
  if pid="$(pid_of mongo secantus)"; then
    log "mongo: our process (pid $pid) is alive but port not answering yet -> waiting"
    wait_port mongo "$MONGO_PORT" "$WAIT_SECS" "$logfile" "$pid"
    log "mongo: up on $HOST:$MONGO_PORT"
    return 0
  fi
  rm -f "$RUN_DIR/mongo.pid"
  mkdir -p "$LOG_DIR" "$RUN_DIR" "$MONGO_DATA"
  install_secantus
  start_bg mongo "$logfile" "$VENV_DIR/bin/python" -m secantus \
    --host "$HOST" --port "$MONGO_PORT" --storage-path "$MONGO_DATA" --standalone
  wait_port mongo "$MONGO_PORT" "$WAIT_SECS" "$logfile" "$(cat "$RUN_DIR/mongo.pid")"
  log "mongo: up on $HOST:$MONGO_PORT (data: $MONGO_DATA)"
}

maildev_bin() { echo "$NPM_DIR/node_modules/maildev/bin/maildev"; }

maildev_installed() {
  local pkg="$NPM_DIR/node_modules/maildev/package.json"
  [ -f "$pkg" ] && [ -f "$(maildev_bin)" ] &&
    grep -q "\"version\": *\"$MAILDEV_VERSION\"" "$pkg"
}

check_maildev_api() {
  local body
  # Filtered on a recipient nobody uses, so a catcher full of mail answers quickly.
  if ! body="$(curl -fsS --max-time 5 "http://$HOST:$MAILDEV_WEB_PORT/email?to.address=probe@infra.invalid")"; then
    die "maildev: GET http://$HOST:$MAILDEV_WEB_PORT/email failed"
  fi
  case "$body" in
    \[*) log "maildev: API GET /email OK (${#body} bytes of JSON list)" ;;
    *) die "maildev: GET /email did not return a JSON list: ${body:0:200}" ;;
  esac
}

# Installed even when another catcher answers: tests start catchers of their own from it.
install_maildev() {
  maildev_installed && return 0
  mkdir -p "$LOG_DIR" "$NPM_DIR"
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  log "maildev: npm install maildev@$MAILDEV_VERSION into $NPM_DIR (log: $LOG_DIR/npm.log)"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact \
    "maildev@$MAILDEV_VERSION" >>"$LOG_DIR/npm.log" 2>&1 ||
    { tail -n 30 "$LOG_DIR/npm.log" >&2; die "maildev: npm install failed"; }
}

up_maildev() {
  local pid
  install_maildev
  if port_up "$SMTP_PORT" && port_up "$MAILDEV_WEB_PORT"; then
    if pid="$(pid_of maildev maildev)"; then
      log "maildev: SMTP $SMTP_PORT + web $MAILDEV_WEB_PORT answer -> reusing (started by infra.sh, pid $pid)"
    else
      log "maildev: SMTP $SMTP_PORT + web $MAILDEV_WEB_PORT answer -> reusing (external)"
    fi
    check_maildev_api
    return 0
  fi
  local logfile="$LOG_DIR/maildev.log"
  if pid="$(pid_of maildev maildev)"; then
    log "maildev: our process (pid $pid) is alive but ports not answering yet -> waiting"
  else
    if port_up "$SMTP_PORT" || port_up "$MAILDEV_WEB_PORT"; then
      die "maildev: only one of ports $SMTP_PORT/$MAILDEV_WEB_PORT answers; something else holds it"
    fi
    rm -f "$RUN_DIR/maildev.pid"
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    # Fresh, empty mailbox on every start, kept under .local/.
    rm -rf "$MAILDEV_DATA"
    mkdir -p "$MAILDEV_DATA"
    start_bg maildev "$logfile" node "$(maildev_bin)" \
      --smtp "$SMTP_PORT" --web "$MAILDEV_WEB_PORT" \
      --ip "$HOST" --web-ip "$HOST" --mail-directory "$MAILDEV_DATA"
    pid="$(cat "$RUN_DIR/maildev.pid")"
  fi
  wait_port "maildev smtp" "$SMTP_PORT" "$WAIT_SECS" "$logfile" "$pid"
  wait_port "maildev web" "$MAILDEV_WEB_PORT" "$WAIT_SECS" "$logfile" "$pid"
  check_maildev_api
  log "maildev: up, SMTP $HOST:$SMTP_PORT, web/API http://$HOST:$MAILDEV_WEB_PORT"
}

up_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    log "chromium: /usr/bin/chromium and /usr/bin/chromedriver present"
    return 0
  fi
  apt_install chromium chromium-driver
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    die "chromium: /usr/bin/chromium or /usr/bin/chromedriver still missing after install"
  fi
  log "chromium: installed"
}

# --- deployment / benchmark tools ----------------------------------------------

ensure_venv() {
  if [ ! -x "$VENV_DIR/bin/python" ]; then
    log "creating venv $VENV_DIR"
    mkdir -p "$LOG_DIR"
    if ! "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1; then
      rm -rf "$VENV_DIR"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1 ||
        { tail -n 20 "$LOG_DIR/pip.log" >&2; die "cannot create venv $VENV_DIR"; }
    fi
  fi
}

kubernetes_validate_installed() {
  [ -x "$VENV_DIR/bin/kubernetes-validate" ] &&
    "$VENV_DIR/bin/python" - "$KUBERNETES_VALIDATE_VERSION" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as m
sys.exit(0 if m.version("kubernetes-validate") == sys.argv[1] else 1)
EOF
}

cmd_tools() {
  with_lock
  local missing=()
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  log "docker-compose: $(docker-compose version --short 2>/dev/null || echo '?') at $(command -v docker-compose)"
  log "wrk: $(command -v wrk)"
  if kubernetes_validate_installed; then
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: present in $VENV_DIR"
  else
    ensure_venv
    log "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION (log: $LOG_DIR/pip.log)"
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >>"$LOG_DIR/pip.log" 2>&1 ||
      { tail -n 30 "$LOG_DIR/pip.log" >&2; die "pip install kubernetes-validate failed"; }
    kubernetes_validate_installed || die "kubernetes-validate not usable after install"
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: installed in $VENV_DIR"
  fi
}

# --- subcommands -------------------------------------------------------------

with_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/infra.lock"
  if ! flock -n 9; then
    log "another infra.sh holds $RUN_DIR/infra.lock -> waiting (max 600s)"
    flock -w 600 9 || die "timed out waiting for $RUN_DIR/infra.lock"
  fi
}

cmd_up() {
  local t0=$SECONDS
  with_lock
  log "repo: $REPO_ROOT (state in $LOCAL_DIR)"
  up_postgres
  up_rabbitmq
  up_mongo
  up_maildev
  up_chromium
  log "all components up ($((SECONDS - t0))s)"
}

status_line() {
  # status_line NAME PORTS PIDNAME PATTERN
  local name="$1" ports="$2" pidname="$3" pattern="$4" p state="up" pid owner
  for p in $ports; do port_up "$p" || state="down"; done
  if [ -n "$pidname" ] && pid="$(pid_of "$pidname" "$pattern")"; then
    owner="started by infra.sh (pid $pid)"
  elif [ "$state" = "up" ]; then
    owner="external (not managed by infra.sh)"
  else
    owner="not running"
  fi
  printf '[infra] %-9s %-12s %-4s %s\n' "$name" "$ports" "$state" "$owner"
}

cmd_status() {
  status_line postgres "$PG_PORT" "" ""
  status_line rabbitmq "$RABBIT_PORT" "" ""
  if mongo_is_local; then
    status_line mongo "$MONGO_PORT" mongo secantus
  else
    log "mongo     -            skipped (MONGO_URL points elsewhere)"
  fi
  status_line maildev "$SMTP_PORT $MAILDEV_WEB_PORT" maildev maildev
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    log "chromium  -            present (/usr/bin/chromium, /usr/bin/chromedriver)"
  else
    log "chromium  -            MISSING (run: $0 up)"
  fi
}

cmd_stop() {
  with_lock
  stop_pid mongo secantus
  stop_pid maildev maildev
  log "postgres/rabbitmq are system services: left running"
}

case "${1:-up}" in
  up) cmd_up ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  tools) cmd_tools ;;
  -h|--help|help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown subcommand '$1' (use: up | status | stop | tools)" ;;
esac
