#!/usr/bin/env bash
# Checks of the deployment files that need no Docker engine and no cluster.
#
#   project/deploy-check.sh validate   the compose file (docker-compose config -q) and every Kubernetes
#                                      manifest (kubernetes-validate --strict, against each version of
#                                      K8S_VERSIONS), plus the kustomize rendering when kubectl is here
#   project/deploy-check.sh build      for every service the compose file builds from the Dockerfile,
#                                      the Dockerfile's own command:
#                                        cargo build --release --locked --bin SERVICE
#                                      then checks that each binary needs no shared library that the
#                                      runtime image (debian:bookworm-slim + ca-certificates) lacks
#   project/deploy-check.sh services   the SERVICE build arguments of the compose file, one a line
#
# Tools: `bash project/infra.sh tools` installs docker-compose and kubernetes-validate.
# `cargo nextest run -p system-tests --test deploy` runs the same validations as tests.
set -euo pipefail

LOG_TAG=deploy-check
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COMPOSE_FILE="$LIB_DIR/docker-compose.yml"
K8S_DIR="$LIB_DIR/k8s"
VENV_BIN="$VENV_DIR/bin"
# The newest schema kubernetes-validate ships, and an older release still widely run.
K8S_VERSIONS="${K8S_VERSIONS:-1.37.0 1.31.0}"

# find_tool NAME: the repo's venv first, then PATH.
find_tool() {
  if [ -x "$VENV_BIN/$1" ]; then
    echo "$VENV_BIN/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    die "$1 not found (in $VENV_BIN or on PATH): run \`bash project/infra.sh tools\`"
  fi
}

# The SERVICE build args of the compose file. The compose file spells each one out as
# `SERVICE: <name>` under `build.args` (tests/deploy.rs checks that structurally).
compose_services() {
  sed -n 's/^[[:space:]]*SERVICE:[[:space:]]*"\{0,1\}\([A-Za-z0-9_-]*\)"\{0,1\}[[:space:]]*$/\1/p' "$COMPOSE_FILE"
}

cmd_validate() {
  local compose kv
  compose="$(find_tool docker-compose)"
  kv="$(find_tool kubernetes-validate)"

  log "compose: $compose -f project/docker-compose.yml config -q"
  "$compose" -f "$COMPOSE_FILE" config -q
  log "compose: valid"

  local manifests=() f
  for f in "$K8S_DIR"/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml) continue ;; esac
    manifests+=("$f")
  done
  [ "${#manifests[@]}" -gt 0 ] || die "no manifests under $K8S_DIR"
  local version
  for version in $K8S_VERSIONS; do
    log "k8s: kubernetes-validate --strict -k $version on ${#manifests[@]} manifests"
    "$kv" --strict --quiet -k "$version" "${manifests[@]}"
  done
  if command -v kubectl >/dev/null 2>&1; then
    log "k8s: kubectl kustomize project/k8s | kubernetes-validate --strict"
    kubectl kustomize "$K8S_DIR" | "$kv" --strict --quiet -
  else
    log "k8s: kubectl not found, kustomize rendering not checked (tests/deploy.rs checks the resource list)"
  fi
  log "k8s: valid"
}

# Libraries every glibc program links and debian:bookworm-slim has.
RUNTIME_LIBS_RE='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|/lib64/ld-linux-x86-64\.so\.2|ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1|ld-linux-aarch64\.so\.1)$'

check_runtime_libs() {
  local bin="$1" lib bad=()
  command -v ldd >/dev/null 2>&1 || { log "ldd not found, shared libraries of $bin not checked"; return 0; }
  while read -r lib; do
    [ -n "$lib" ] || continue
    [[ "$lib" =~ $RUNTIME_LIBS_RE ]] || bad+=("$lib")
  done < <(ldd "$bin" | awk '{print $1}')
  [ "${#bad[@]}" -eq 0 ] ||
    die "$bin needs ${bad[*]}, which the runtime image (debian:bookworm-slim + ca-certificates) lacks"
}

cmd_build() {
  local services=() s t0 total=$SECONDS
  mapfile -t services < <(compose_services)
  [ "${#services[@]}" -gt 0 ] || die "no SERVICE build args found in $COMPOSE_FILE"
  cd "$REPO_ROOT"
  for s in "${services[@]}"; do
    t0=$SECONDS
    log "cargo build --release --locked --bin $s"
    cargo build --release --locked --bin "$s"
    local bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/$s"
    [ -x "$bin" ] || die "cargo reported success but $bin is missing"
    check_runtime_libs "$bin"
    log "$s: $(du -h "$bin" | cut -f1) at $bin ($((SECONDS - t0))s)"
  done
  log "${#services[@]} services built as the Dockerfile builds them ($((SECONDS - total))s)"
}

case "${1:-}" in
  validate) cmd_validate ;;
  build) cmd_build ;;
  services) compose_services ;;
  -h|--help|help|"") sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown subcommand '$1' (use: validate | build | services)" ;;
esac
