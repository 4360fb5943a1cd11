#!/usr/bin/env bash
# Shared helpers for the hack/ scripts: paths, progress output, and a build lock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/bin"
CACHE="${BIN}/.cache"
mkdir -p "${BIN}" "${CACHE}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# have NAME VERSION: true when bin/NAME exists and was built at VERSION.
have() { [[ -x "${BIN}/$1" && -f "${CACHE}/$1.version" && "$(cat "${CACHE}/$1.version")" == "$2" ]]; }
mark() { echo "$2" > "${CACHE}/$1.version"; }

# with_lock NAME CMD...: serialize concurrent builds of the same tool.
with_lock() {
  local name="$1"; shift
  exec {fd}>"${CACHE}/${name}.lock"
  flock "${fd}"
  "$@"
  flock -u "${fd}"
}
