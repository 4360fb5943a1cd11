#!/usr/bin/env bash
# Builds or installs the tools the project needs into bin/: controller-gen, helm,
# FerretDB, and redis-server, redis-sentinel and redis-cli (from Debian); and
# PostgreSQL 15 (from Debian) when it can be installed, the faster FerretDB backend
# of the test suites and the local stack (both fall back to SQLite without it).
# Idempotent: a tool at its pinned version is not rebuilt.
#   hack/tools.sh [controller-gen] [helm] [ferretdb] [redis] [postgresql]   (default: all)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONTROLLER_GEN_VERSION="${CONTROLLER_GEN_VERSION:-v0.23.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_K8S_VERSION="${HELM_K8S_VERSION:-v1.37.2}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"

controller_gen() {
  if have controller-gen "${CONTROLLER_GEN_VERSION}"; then log "controller-gen ${CONTROLLER_GEN_VERSION}: cached"; return; fi
  log "controller-gen ${CONTROLLER_GEN_VERSION}: building"
  GOBIN="${BIN}" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_GEN_VERSION}"
  mark controller-gen "${CONTROLLER_GEN_VERSION}"
}

helm_bin() {
  if have helm "${HELM_VERSION}"; then log "helm ${HELM_VERSION}: cached"; return; fi
  log "helm ${HELM_VERSION}: building"
  local k8s_minor
  k8s_minor="$(echo "${HELM_K8S_VERSION}" | cut -d. -f2)"
  # Without these ldflags helm reports v3 with no patch level and assumes Kubernetes 1.20.
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8s_minor}"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}"
  GOBIN="${BIN}" CGO_ENABLED=0 go install -ldflags "${ld}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  mark helm "${HELM_VERSION}"
}

ferretdb() {
  if have ferretdb "${FERRETDB_VERSION}"; then log "ferretdb ${FERRETDB_VERSION}: cached"; return; fi
  log "ferretdb ${FERRETDB_VERSION}: downloading module"
  local src
  src="$(cd "${CACHE}" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@${FERRETDB_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  local dir="${CACHE}/ferretdb-src"
  rm -rf "${dir}"; cp -r "${src}" "${dir}"; chmod -R u+w "${dir}"
  # The released module lacks the version file its build reads at start.
  echo "${FERRETDB_VERSION}" > "${dir}/build/version/version.txt"
  log "ferretdb ${FERRETDB_VERSION}: building"
  (cd "${dir}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN}/ferretdb" ./cmd/ferretdb)
  mark ferretdb "${FERRETDB_VERSION}"
}

redis() {
  # redis-server and redis-cli (redis-tools) for single servers and Cluster,
  # redis-sentinel for the Sentinel tests.
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1; then
    log "redis-server: $(redis-server --version | awk '{print $3}')"; return
  fi
  log "redis-server, redis-sentinel: installing from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server redis-sentinel redis-tools >/dev/null
  # The packages start system services; the project starts its own servers.
  local svc
  for svc in redis-server redis-sentinel; do
    (systemctl disable --now "${svc}" >/dev/null 2>&1 || service "${svc}" stop >/dev/null 2>&1 || true)
  done
}

postgresql() {
  # The server binaries internal/testenv starts (/usr/lib/postgresql/15/bin). Optional:
  # where it cannot be installed (no apt-get, not root, no network) FerretDB runs on SQLite.
  if [[ -x /usr/lib/postgresql/15/bin/initdb && -x /usr/lib/postgresql/15/bin/postgres ]]; then
    log "postgresql: $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')"; return
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
    log "postgresql 15: not installed and cannot be (needs apt-get as root); FerretDB will run on SQLite"; return
  fi
  log "postgresql 15: installing from Debian"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null; }; then
    log "postgresql 15: installation failed; FerretDB will run on SQLite"; return
  fi
  # The package starts a system cluster; the project starts its own servers.
  (systemctl disable --now postgresql >/dev/null 2>&1 || service postgresql stop >/dev/null 2>&1 || true)
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(controller-gen helm ferretdb redis postgresql)
for t in "${tools[@]}"; do
  case "${t}" in
    controller-gen) with_lock controller-gen controller_gen ;;
    helm) with_lock helm helm_bin ;;
    ferretdb) with_lock ferretdb ferretdb ;;
    redis) with_lock redis redis ;;
    postgresql) with_lock postgresql postgresql ;;
    *) echo "unknown tool: ${t}" >&2; exit 2 ;;
  esac
done
