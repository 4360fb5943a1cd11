#!/usr/bin/env bash
# Copies what controller-gen generates into the Helm chart, so the chart installs exactly
# the generated CRDs and grants exactly the generated manager rules:
#   config/crd/bases/*.yaml -> charts/backtest-persistence-operator/files/crds/
#   config/rbac/role.yaml   -> charts/backtest-persistence-operator/files/rbac/manager-role.yaml
# The chart's templates read these files (crds.enabled, crds.keep, namespaced RBAC); they are
# never edited by hand. Run by `make manifests`; a no-op while nothing has been generated.
#   hack/sync-chart-crds.sh           copy
#   hack/sync-chart-crds.sh --check   exit 1 when the chart differs from the generated files
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="${ROOT}/charts/backtest-persistence-operator"
CRD_SRC="${ROOT}/config/crd/bases"
ROLE_SRC="${ROOT}/config/rbac/role.yaml"
CRD_DST="${CHART}/files/crds"
ROLE_DST="${CHART}/files/rbac/manager-role.yaml"

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

drift=0
# sync SRC DST: copy, or in check mode report a difference.
sync() {
  local src="$1" dst="$2"
  if ${check}; then
    if ! cmp -s "${src}" "${dst}"; then
      echo "chart out of date: ${dst#"${ROOT}"/} differs from ${src#"${ROOT}"/} (run make manifests)" >&2
      drift=1
    fi
    return
  fi
  mkdir -p "$(dirname "${dst}")"
  cmp -s "${src}" "${dst}" || cp "${src}" "${dst}"
}

shopt -s nullglob
crds=("${CRD_SRC}"/*.yaml)
for src in "${crds[@]}"; do
  sync "${src}" "${CRD_DST}/$(basename "${src}")"
done
# A CRD removed from the API is removed from the chart too.
if [[ ${#crds[@]} -gt 0 ]]; then
  for dst in "${CRD_DST}"/*.yaml; do
    [[ -f "${CRD_SRC}/$(basename "${dst}")" ]] && continue
    if ${check}; then
      echo "chart out of date: ${dst#"${ROOT}"/} has no generated source (run make manifests)" >&2
      drift=1
    else
      rm -f "${dst}"
    fi
  done
fi
if [[ -f "${ROLE_SRC}" ]]; then
  sync "${ROLE_SRC}" "${ROLE_DST}"
fi
exit "${drift}"
