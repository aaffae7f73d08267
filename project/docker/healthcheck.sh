#!/bin/bash
# healthcheck [PATH] [PORT]: exit 0 iff `GET http://127.0.0.1:PORT/PATH` answers a 2xx status.
#
# The runtime image has no curl or wget: lib.sh's http_get uses bash's /dev/tcp instead (bash is
# in debian:bookworm-slim already, so the check adds no package). PORT defaults to the container's
# $PORT, the same variable the service listens on, else to the service's default port that the
# image records in /etc/service-port (from wiring.env); PATH defaults to /health.
set -u
LOG_TAG=healthcheck
# lib.sh is one level up, in the repository (project/) as in the image (/usr/local/lib/micro-rs/,
# where /usr/local/bin/healthcheck links to this file).
# shellcheck source=../lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"

path="${1:-/health}"
port_file="${HEALTHCHECK_PORT_FILE:-/etc/service-port}"
default_port="$(cat "$port_file" 2>/dev/null || true)"
port="${2:-${PORT:-$default_port}}"
[ -n "$port" ] || die "no port to probe: give one, set PORT, or record it in $port_file"
HTTP_READ_SECS="${HEALTHCHECK_READ_SECS:-3}"

response="$(http_get "$port" "$path")" || die "nothing listens on port $port"
status="${response%%$'\n'*}"
http_2xx "$status" || die "GET $path on port $port -> ${status:-no response}"
