#!/bin/bash
# healthcheck [PATH] [PORT]: exit 0 iff `GET http://127.0.0.1:PORT/PATH` answers a 2xx status.
#
# The runtime image has no curl or wget: this uses bash's /dev/tcp instead (bash is in
# debian:bookworm-slim already, so the check adds no package). PORT defaults to the container's
# $PORT, the same variable the service listens on, else to the service's default port that the
# image records in /etc/service-port; PATH defaults to /health.
set -u
# A peer that closes early must make this fail with a message, not kill it silently by SIGPIPE.
trap '' PIPE
path="${1:-/health}"
default_port="$(cat "${HEALTHCHECK_PORT_FILE:-/etc/service-port}" 2>/dev/null || true)"
port="${2:-${PORT:-${default_port:-8080}}}"

# The connection is to loopback: it succeeds or is refused at once. The read is bounded.
if ! { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null; then
  echo "healthcheck: nothing listens on port $port" >&2
  exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
status=""
IFS= read -r -t "${HEALTHCHECK_READ_SECS:-3}" status <&3 || true
# Drain the (small) rest of the response so the server never sees a reset connection.
while IFS= read -r -t 1 _ <&3; do :; done
exec 3<&- 3>&-
case "$status" in
  HTTP/1.[01]\ 2[0-9][0-9]*) exit 0 ;;
  *) echo "healthcheck: GET $path on port $port -> ${status:-no response}" >&2; exit 1 ;;
esac
