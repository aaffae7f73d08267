#!/usr/bin/env bash
# Local infrastructure launcher for the microservices system.
#
#   project/infra.sh [up]          install what is missing, start what is not running (idempotent)
#   project/infra.sh status        one line per component, and who started it
#   project/infra.sh stop          stop exactly what `up` started (never a server it found running)
#   project/infra.sh database NAME create the PostgreSQL database NAME if it is missing
#   project/infra.sh promtool      install only prometheus + promtool (apt; idempotent): the crates'
#                                  /metrics tests run `promtool check metrics`
#   project/infra.sh browser       install Chromium and chromedriver (the browser test's; idempotent)
#   project/infra.sh tools         install the deployment/bench tools (idempotent): docker-compose,
#                                  wrk and prometheus + promtool (apt), kubernetes-validate (PyPI,
#                                  into <repo>/.local/venv),
#                                  schemathesis (PyPI, into <repo>/.local/venv-schemathesis)
#
# Components, on 127.0.0.1 at the ports of project/wiring.env:
#   PostgreSQL  (system apt package, started with pg_ctlcluster; the database of POSTGRES_DB,
#                user POSTGRES_USER / password POSTGRES_PASSWORD)
#   RabbitMQ    (system apt package, rabbitmq-server -detached; guest/guest)
#   MongoDB     (SecantusDB wire server in <repo>/.local/venv; skipped when MONGO_URL points
#                somewhere other than this machine's MONGO_PORT)
#   SMTP        SMTP_PORT + web UI / JSON API MAILCATCHER_PORT (maildev in <repo>/.local/npm)
#   Chromium + chromedriver at /usr/bin/chromium, /usr/bin/chromedriver (`browser`; nothing to start)
#
# Anything already answering on its port is reused and never stopped by `stop`; what `up` started
# (its pid recorded under <repo>/.local/run/) is. Everything this script creates lives under
# <repo>/.local/.
set -euo pipefail

LOG_TAG=infra
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MONGO_DATA="$LOCAL_DIR/mongo"
MAILDEV_DATA="$LOCAL_DIR/maildev"

HOST=127.0.0.1
PG_PORT="${WIRING[POSTGRES_PORT]}"
RABBIT_PORT="${WIRING[RABBIT_PORT]}"
MONGO_PORT="${WIRING[MONGO_PORT]}"
SMTP_PORT="${WIRING[SMTP_PORT]}"
MAILDEV_WEB_PORT="${WIRING[MAILCATCHER_PORT]}"
PG_USER="${WIRING[POSTGRES_USER]}"
PG_PASSWORD="${WIRING[POSTGRES_PASSWORD]}"
PG_DB="${WIRING[POSTGRES_DB]}"

SECANTUS_VERSION=0.7.0b3
KUBERNETES_VALIDATE_VERSION=1.37.0
SCHEMATHESIS_VERSION=4.32.5
MAILDEV_VERSION=2.2.1

WAIT_SECS="${INFRA_WAIT_SECS:-60}"
RABBIT_WAIT_SECS="${INFRA_RABBIT_WAIT_SECS:-90}"

export DEBIAN_FRONTEND=noninteractive

# --- processes this script started ---------------------------------------------------------

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

# adopt_pid NAME PIDFILE: record the pid a system service wrote to PIDFILE as started by
# infra.sh (it daemonises itself, so start_bg cannot see it), for `stop`.
adopt_pid() {
  local name="$1" pidfile="$2" pid
  pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    mkdir -p "$RUN_DIR"
    echo "$pid" >"$RUN_DIR/$name.pid"
  else
    warn "$name: no pid in $pidfile: \`stop\` will leave it running"
  fi
}

# stop_pid NAME PATTERN [CMD...]: stop the process recorded in RUN_DIR/NAME.pid, with CMD if
# given (a system service's own stop command), else by SIGTERM to its process group.
stop_pid() {
  local name="$1" pattern="$2" pid; shift 2
  if ! pid="$(pid_of "$name" "$pattern")"; then
    if [ -f "$RUN_DIR/$name.pid" ]; then
      log "$name: stale pid file removed (the process infra.sh started is gone)"
      rm -f "$RUN_DIR/$name.pid"
    else
      log "$name: not started by infra.sh, nothing to stop"
    fi
    return 0
  fi
  log "$name: stopping pid $pid"
  if [ "$#" -gt 0 ]; then
    "$@" || warn "$name: $* returned non-zero"
  else
    # It leads its own session/process group: signal the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  fi
  # A server's own shutdown (a database flushing) may take longer than a signalled process.
  local tries=40
  [ "$#" -gt 0 ] && tries=120
  for _ in $(seq 1 "$tries"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    if [ "$#" -gt 0 ]; then
      warn "$name: pid $pid still alive 30s after $*: left as it is"
      return 0
    fi
    warn "$name: pid $pid still alive after 10s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$RUN_DIR/$name.pid"
  log "$name: stopped"
}

# true if MONGO_URL is unset or points at this machine's MONGO_PORT.
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
    psql -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -tAq "$@"
}

# pg_ensure_db NAME: the database NAME exists (created when missing).
pg_ensure_db() {
  local db="$1"
  [[ "$db" =~ ^[a-z_][a-z0-9_]*$ ]] || die "postgres: '$db' is not a plain database name ([a-z_][a-z0-9_]*)"
  if ! command -v psql >/dev/null 2>&1; then
    warn "psql not found; cannot check database '$db' (apt package postgresql-client)"
    return 0
  fi
  if ! pg_psql_tcp -c 'select 1' >/dev/null 2>&1; then
    # Fresh Debian install: TCP uses scram/md5 and postgres has no password yet.
    if id postgres >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
      log "postgres: setting password of user $PG_USER (TCP login failed)"
      as_root runuser -u postgres -- psql -q -c "ALTER USER $PG_USER PASSWORD '$PG_PASSWORD'" >/dev/null
    fi
    pg_psql_tcp -c 'select 1' >/dev/null 2>&1 ||
      die "postgres: cannot log in as $PG_USER/$PG_PASSWORD over TCP on $HOST:$PG_PORT"
  fi
  if [ "$(pg_psql_tcp -c "select 1 from pg_database where datname='$db'")" = "1" ]; then
    log "postgres: database '$db' exists"
  else
    log "postgres: creating database '$db'"
    pg_psql_tcp -c "CREATE DATABASE $db" >/dev/null
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
      log "postgres: $HOST:$PG_PORT answers after install (started by the package, a system service)"
    else
      log "postgres: starting cluster $ver/main"
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
        warn "postgres: pg_ctlcluster start returned non-zero (maybe already starting)"
      wait_port postgres "$PG_PORT" "$WAIT_SECS" "$logfile"
      adopt_pid postgres "/var/run/postgresql/$ver-main.pid"
      log "postgres: up on $HOST:$PG_PORT"
    fi
  fi
  pg_ensure_db "$PG_DB"
}

stop_postgres() {
  stop_pid postgres postgres as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_cluster_version)" main stop
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
    log "rabbitmq: $HOST:$RABBIT_PORT answers after install (started by the package, a system service)"
    return 0
  fi
  log "rabbitmq: starting (rabbitmq-server -detached)"
  as_root env PATH="$PATH:/usr/sbin:/sbin" rabbitmq-server -detached ||
    warn "rabbitmq: rabbitmq-server -detached returned non-zero"
  wait_port rabbitmq "$RABBIT_PORT" "$RABBIT_WAIT_SECS" "$(rabbit_log)"
  # The node writes its pid to <mnesia base>/<node name>.pid.
  local pidfile
  # shellcheck disable=SC2012  # the newest; names are rabbit@<host>.pid
  pidfile="$(ls -t /var/lib/rabbitmq/mnesia/rabbit@*.pid 2>/dev/null | head -1 || true)"
  adopt_pid rabbitmq "${pidfile:-/var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid}"
  log "rabbitmq: up on $HOST:$RABBIT_PORT (guest/guest)"
}

stop_rabbitmq() {
  stop_pid rabbitmq beam as_root env PATH="$PATH:/usr/sbin:/sbin" rabbitmqctl shutdown
}

# Installed even when another server answers on MONGO_PORT: tests start instances of their own
# (a server they can stop) from this venv.
install_secantus() { pip_install secantusdb "$SECANTUS_VERSION"; }

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
  start_bg mongo "$logfile" "$VENV_DIR/bin/python" -m secantus \
    --host "$HOST" --port "$MONGO_PORT" --storage-path "$MONGO_DATA" --standalone
  wait_port mongo "$MONGO_PORT" "$WAIT_SECS" "$logfile" "$(cat "$RUN_DIR/mongo.pid")"
  log "mongo: up on $HOST:$MONGO_PORT (data: $MONGO_DATA)"
}

maildev_installed() {
  local pkg="$NPM_DIR/node_modules/maildev/package.json"
  [ -f "$pkg" ] && [ -f "$MAILDEV_BIN" ] &&
    grep -q "\"version\": *\"$MAILDEV_VERSION\"" "$pkg"
}

check_maildev_api() {
  local response body
  # Filtered on a recipient nobody uses, so a catcher full of mail answers quickly.
  response="$(http_get "$MAILDEV_WEB_PORT" "/email?to.address=probe@infra.invalid")" ||
    die "maildev: nothing answers on $HOST:$MAILDEV_WEB_PORT"
  http_2xx "${response%%$'\n'*}" || die "maildev: GET /email answered ${response%%$'\n'*}"
  body="${response#*$'\n\n'}"
  case "$body" in
    \[*) log "maildev: API GET /email OK (${#body} bytes of JSON list)" ;;
    *) die "maildev: GET /email did not return a JSON list: ${body:0:200}" ;;
  esac
}

# Installed even when another catcher answers: tests (and a second stack) start catchers of
# their own from it.
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
    maildev_command "$SMTP_PORT" "$MAILDEV_WEB_PORT" "$MAILDEV_DATA" "$HOST"
    start_bg maildev "$logfile" "${MAILDEV_COMMAND[@]}"
    pid="$(cat "$RUN_DIR/maildev.pid")"
  fi
  wait_port "maildev smtp" "$SMTP_PORT" "$WAIT_SECS" "$logfile" "$pid"
  wait_port "maildev web" "$MAILDEV_WEB_PORT" "$WAIT_SECS" "$logfile" "$pid"
  check_maildev_api
  log "maildev: up, SMTP $HOST:$SMTP_PORT, web/API http://$HOST:$MAILDEV_WEB_PORT"
}

chromium_present() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

up_chromium() {
  if chromium_present; then
    log "chromium: /usr/bin/chromium and /usr/bin/chromedriver present"
    return 0
  fi
  apt_install chromium chromium-driver
  chromium_present || die "chromium: /usr/bin/chromium or /usr/bin/chromedriver still missing after install"
  log "chromium: installed"
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
  log "all components up ($((SECONDS - t0))s)"
}

cmd_database() {
  [ -n "${1:-}" ] || die "usage: $0 database NAME"
  with_lock
  port_up "$PG_PORT" || die "postgres does not answer on $HOST:$PG_PORT: run \`bash project/infra.sh up\` first"
  pg_ensure_db "$1"
}

cmd_browser() {
  with_lock
  up_chromium
}

# Debian's prometheus: `promtool check metrics` for every service's /metrics test, and the
# Prometheus that `STACK_PROMETHEUS=1 stack.sh` and the end-to-end test run. Without its
# recommends (the node exporter). Its package does not start it here (no init system).
up_promtool() {
  if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    apt_install --no-install-recommends prometheus
  fi
  log "prometheus: $(command -v prometheus), promtool: $(command -v promtool)"
}

cmd_promtool() {
  with_lock
  up_promtool
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
  up_promtool
  pip_install kubernetes-validate "$KUBERNETES_VALIDATE_VERSION"
  [ -x "$VENV_DIR/bin/kubernetes-validate" ] || die "kubernetes-validate is installed but $VENV_DIR/bin has no command"
  log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: present in $VENV_DIR"
  VENV_DIR="$SCHEMATHESIS_VENV" pip_install schemathesis "$SCHEMATHESIS_VERSION"
  [ -x "$SCHEMATHESIS_VENV/bin/schemathesis" ] || die "schemathesis is installed but $SCHEMATHESIS_VENV/bin has no command"
  log "schemathesis $SCHEMATHESIS_VERSION: present in $SCHEMATHESIS_VENV"
}

status_line() {
  # status_line NAME PORTS PIDNAME PATTERN
  local name="$1" ports="$2" pidname="$3" pattern="$4" p state="up" pid owner
  for p in $ports; do port_up "$p" || state="down"; done
  if pid="$(pid_of "$pidname" "$pattern")"; then
    owner="started by infra.sh (pid $pid)"
  elif [ "$state" = "up" ]; then
    owner="external (not managed by infra.sh)"
  else
    owner="not running"
  fi
  printf '[infra] %-9s %-12s %-4s %s\n' "$name" "$ports" "$state" "$owner"
}

cmd_status() {
  status_line postgres "$PG_PORT" postgres postgres
  status_line rabbitmq "$RABBIT_PORT" rabbitmq beam
  if mongo_is_local; then
    status_line mongo "$MONGO_PORT" mongo secantus
  else
    log "mongo     -            skipped (MONGO_URL points elsewhere)"
  fi
  status_line maildev "$SMTP_PORT $MAILDEV_WEB_PORT" maildev maildev
  if chromium_present; then
    log "chromium  -            present (/usr/bin/chromium, /usr/bin/chromedriver)"
  else
    log "chromium  -            missing (only the browser test needs it: $0 browser)"
  fi
}

# The reverse of `up`'s order: the servers the services need go last.
cmd_stop() {
  with_lock
  stop_pid maildev maildev
  stop_pid mongo secantus
  stop_rabbitmq
  stop_postgres
}

case "${1:-up}" in
  up) cmd_up ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  database) cmd_database "${2:-}" ;;
  browser) cmd_browser ;;
  tools) cmd_tools ;;
  promtool) cmd_promtool ;;
  -h|--help|help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown subcommand '$1' (use: up | status | stop | database NAME | browser | tools | promtool)" ;;
esac
