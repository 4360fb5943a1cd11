#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl for envtest from the Go module proxy into bin/.
# k8s.io/kubernetes cannot be `go install`ed (its staging modules are required at
# v0.0.0), so a small wrapper module pins each of them with replace directives.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
STAGING_VERSION="v0${K8S_VERSION#v1}"

build_kube() {
  if have kube-apiserver "${K8S_VERSION}" && have kubectl "${K8S_VERSION}"; then
    log "kube-apiserver and kubectl ${K8S_VERSION}: cached"; return
  fi
  local dir="${CACHE}/kube-wrapper"
  rm -rf "${dir}"; mkdir -p "${dir}"
  log "kube-apiserver ${K8S_VERSION}: resolving k8s.io/kubernetes module"
  local gomod
  gomod="$(cd "${dir}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  {
    echo "module kubewrapper"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    # Every staging module k8s.io/kubernetes requires at v0.0.0 is pinned to the release.
    awk '/^\t(k8s\.io\/[^ ]+) v0\.0\.0$/ {print "replace " $1 " => " $1 " '"${STAGING_VERSION}"'"}' "${gomod}" | sort -u
  } > "${dir}/go.mod"
  cat > "${dir}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "kube-apiserver ${K8S_VERSION}: downloading modules"
  (cd "${dir}" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  (cd "${dir}" && GOFLAGS=-mod=mod go get "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null)
  local commit="0000000000000000000000000000000000000000"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"
    ld+=" -X ${pkg}.gitCommit=${commit} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  log "kube-apiserver ${K8S_VERSION}: building (several minutes on a cold cache)"
  (cd "${dir}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "${ld}" -o "${BIN}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  mark kube-apiserver "${K8S_VERSION}"
  log "kubectl ${K8S_VERSION}: building"
  (cd "${dir}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "${ld}" -o "${BIN}/kubectl" k8s.io/kubernetes/cmd/kubectl)
  mark kubectl "${K8S_VERSION}"
  log "kube-apiserver ${K8S_VERSION}: $("${BIN}/kube-apiserver" --version)"
}

build_etcd() {
  if have etcd "${ETCD_VERSION}"; then log "etcd ${ETCD_VERSION}: cached"; return; fi
  local dir="${CACHE}/etcd-wrapper"
  rm -rf "${dir}"; mkdir -p "${dir}"
  cat > "${dir}/go.mod" <<GOMOD
module etcdwrapper

go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')
GOMOD
  cat > "${dir}/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "etcd ${ETCD_VERSION}: downloading modules"
  (cd "${dir}" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null && GOFLAGS=-mod=mod go mod tidy >/dev/null)
  log "etcd ${ETCD_VERSION}: building"
  (cd "${dir}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN}/etcd" .)
  mark etcd "${ETCD_VERSION}"
}

with_lock envtest build_kube
with_lock envtest build_etcd
log "envtest assets ready in ${BIN} (KUBEBUILDER_ASSETS=${BIN})"
