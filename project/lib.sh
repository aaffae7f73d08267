# Shell helpers shared by the project's scripts: sourced, never run. Set LOG_TAG first (the name
# messages start with), then `. project/lib.sh`. Used by infra.sh, stack.sh, deploy-check.sh and
# docker/healthcheck.sh; the last one runs inside the container image too, where the Dockerfile
# copies this file and wiring.env to /usr/local/lib/micro-rs/ (the layout of project/), so
# everything here must work with nothing but bash and coreutils, and as a non-root user.
#
#   log / warn / die                 messages on stdout / stderr, die exits 1
#   port_up, wait_port               TCP probes (bash's /dev/tcp)
#   http_get, http_ok, http_2xx      HTTP/1.0 GET through /dev/tcp (the image has no curl)
#   as_root, apt_install             installing system packages
#   ensure_venv, venv_has, pip_install   the repository's Python venv (.local/venv; another with
#                                    VENV_DIR=... before the call, as for SCHEMATHESIS_VENV)
#   maildev_command                  the SMTP catcher's command line (infra.sh's and a stack's own)
#   WIRING[KEY], service_port NAME   the wiring table, project/wiring.env

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(dirname "$LIB_DIR")"
# Everything the scripts install or run lives under .local/ (never under the image's paths).
LOCAL_DIR="$REPO_ROOT/.local"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/log"
VENV_DIR="$LOCAL_DIR/venv"
# schemathesis in a venv of its own: its many dependencies never meet SecantusDB's.
SCHEMATHESIS_VENV="$LOCAL_DIR/venv-schemathesis"
NPM_DIR="$LOCAL_DIR/npm"
MAILDEV_BIN="$NPM_DIR/node_modules/maildev/bin/maildev"
PYTHON="${PYTHON:-python3}"

# --- messages ------------------------------------------------------------------------------

log() { printf '[%s] %s\n' "${LOG_TAG:-lib}" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "${LOG_TAG:-lib}" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "${LOG_TAG:-lib}" "$*" >&2
  exit 1
}

# --- probes --------------------------------------------------------------------------------

# port_up PORT [HOST]: true if a TCP connection succeeds within a second.
port_up() {
  timeout 1 bash -c "exec 3<>/dev/tcp/${2:-127.0.0.1}/$1" >/dev/null 2>&1
}

# wait_port NAME PORT SECS LOGFILE [PID]: polls until the port answers; dies with the end of
# LOGFILE when it does not within SECS, or as soon as PID exits.
wait_port() {
  local name="$1" port="$2" secs="$3" logfile="$4" pid="${5:-}"
  local deadline=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    port_up "$port" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      warn "$name (pid $pid) exited before port $port answered"
      break
    fi
    sleep 0.5
  done
  port_up "$port" && return 0
  if [ -n "$logfile" ] && [ -r "$logfile" ]; then
    printf '%s\n' "--- last 40 lines of $logfile ---" >&2
    tail -n 40 "$logfile" >&2 || true
    printf '%s\n' "--- end of log ---" >&2
  fi
  die "$name did not answer on 127.0.0.1:$port within ${secs}s"
}

# http_get PORT PATH [HOST]: prints the response to `GET PATH` (status line, headers, an empty
# line, the body; without the CRs), false when nothing listens. The connection is to a local
# port: it succeeds or is refused at once; each read waits at most HTTP_READ_SECS (default 3).
# A subshell, so that fd 3 and the PIPE trap stay inside it.
http_get() (
  local port="$1" path="$2" host="${3:-127.0.0.1}" line="" wait="${HTTP_READ_SECS:-3}"
  # A peer that closes early must end this with what it read, not kill it silently by SIGPIPE.
  trap '' PIPE
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || exit 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3 2>/dev/null || exit 0
  # To the end (the rest of a small answer comes at once), so the server never sees a reset.
  while IFS= read -r -t "$wait" line <&3 || [ -n "$line" ]; do
    printf '%s\n' "${line%$'\r'}"
    line="" wait=1
  done
  exit 0
)

# http_2xx STATUS_LINE: true for an HTTP/1.x 2xx status line.
http_2xx() { [[ "$1" =~ ^HTTP/1\.[01]\ 2[0-9][0-9] ]]; }

# http_ok PORT PATH [HOST]: true when `GET PATH` answers a 2xx status.
http_ok() {
  local response
  response="$(http_get "$@")" || return 1
  http_2xx "${response%%$'\n'*}"
}

# --- installing ----------------------------------------------------------------------------

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
as_root() { "${SUDO[@]}" "$@"; }

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

# venv_usable: the venv exists where its scripts think it is. A venv moved or copied (another
# checkout's .local) keeps scripts whose first line names the old path, which cannot run.
venv_usable() {
  [ -x "$VENV_DIR/bin/python" ] && case "$(head -n 1 "$VENV_DIR/bin/pip" 2>/dev/null)" in "#!$VENV_DIR/bin/python"*) ;; *) false ;; esac
}

# ensure_venv: the repository's venv (.local/venv), created with python3-venv if missing, made
# again if it was moved.
ensure_venv() {
  venv_usable && return 0
  if [ -e "$VENV_DIR" ]; then
    log "venv $VENV_DIR was made elsewhere (its scripts name another path): making it again"
    rm -rf "$VENV_DIR"
  fi
  log "creating venv $VENV_DIR"
  mkdir -p "$LOG_DIR"
  if ! "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1; then
    rm -rf "$VENV_DIR"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV_DIR" >>"$LOG_DIR/pip.log" 2>&1 ||
      { tail -n 20 "$LOG_DIR/pip.log" >&2; die "cannot create venv $VENV_DIR"; }
  fi
}

# venv_has PACKAGE VERSION: true if the venv holds exactly that version of the package.
venv_has() {
  venv_usable &&
    "$VENV_DIR/bin/python" - "$1" "$2" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as m
sys.exit(0 if m.version(sys.argv[1]) == sys.argv[2] else 1)
EOF
}

# pip_install PACKAGE VERSION: installs it into the venv unless it is there already.
pip_install() {
  local package="$1" version="$2"
  venv_has "$package" "$version" && return 0
  ensure_venv
  log "pip install $package==$version (log: $LOG_DIR/pip.log)"
  "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "$package==$version" \
    >>"$LOG_DIR/pip.log" 2>&1 || { tail -n 30 "$LOG_DIR/pip.log" >&2; die "pip install $package failed"; }
  venv_has "$package" "$version" || die "$package $version is not usable after pip install"
}

# maildev_command SMTP_PORT WEB_PORT MAIL_DIR [HOST]: sets MAILDEV_COMMAND to the command line
# of an SMTP catcher (maildev, installed by `infra.sh up`) on those ports.
maildev_command() {
  local host="${4:-127.0.0.1}"
  MAILDEV_COMMAND=(node "$MAILDEV_BIN" --smtp "$1" --web "$2" --ip "$host" --web-ip "$host"
    --mail-directory "$3")
}

# --- the wiring table ----------------------------------------------------------------------

# WIRING[KEY]: project/wiring.env, read (not sourced) so that its keys never overwrite a
# variable of the caller's environment, such as a MONGO_DB meant for a service.
declare -gA WIRING=()
load_wiring() {
  local file="$LIB_DIR/wiring.env" key value
  [ -r "$file" ] || die "$file is missing"
  while IFS='=' read -r key value || [ -n "$key" ]; do
    case "$key" in '' | '#'*) continue ;; esac
    [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ && -n "$value" ]] || die "$file: not a KEY=VALUE line: $key=$value"
    WIRING[$key]="$value"
  done <"$file"
}
load_wiring

# service_port NAME: the default HTTP port of a service (NAME_PORT in the table).
service_port() {
  local key="${1^^}_PORT"
  [ -n "${WIRING[$key]:-}" ] || die "no $key in $LIB_DIR/wiring.env (unknown service '$1')"
  printf '%s\n' "${WIRING[$key]}"
}
