#!/usr/bin/env bash
# Installs the npm dependencies of the backtest-kit client, of the whole-system
# scenarios (test/e2e/node) and of the examples: backtest-kit 19.5.0 with the
# overrides in each package.json. Idempotent; node_modules/ is reused between runs.
# With arguments, installs only those folders (relative to the repository), e.g.
# test/bench/backtest-kit for the real-client benchmark.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v npm >/dev/null 2>&1; then
  log "npm not found: install Node.js 20 or newer to build the backtest-kit client"
  exit 1
fi

# install DIR: npm install unless node_modules matches package.json and the client sources.
install() {
  local dir="${ROOT}/$1" stamp sum
  stamp="${dir}/node_modules/.deps-stamp"
  # The client is copied (install-links), so its sources are part of the stamp.
  sum="$({ cat "${dir}/package.json" "${dir}/.npmrc" \
    "${ROOT}"/clients/backtest-kit/package.json "${ROOT}"/clients/backtest-kit/src/* \
    "${ROOT}"/clients/backtest-kit/compat/di-singleton/* "${dir}"/compat/*/* 2>/dev/null || true; } | sha256sum | cut -c1-16)"
  if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${sum}" ]]; then
    return 0
  fi
  log "npm install in $1"
  rm -rf "${dir}/node_modules/@backtest-persistence"
  (cd "${dir}" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
  echo "${sum}" > "${stamp}"
}

if (( $# > 0 )); then
  for d in "$@"; do with_lock npm install "${d}"; done
  exit 0
fi
with_lock npm install clients/backtest-kit
with_lock npm install test/e2e/node
for ex in "${ROOT}"/examples/*/; do
  [[ -f "${ex}/package.json" ]] && with_lock npm install "examples/$(basename "${ex}")"
done
exit 0
