#!/usr/bin/env bash
# Builds the Kubernetes node the cluster tests run (tests/cluster/): the control plane, kubelet,
# kube-proxy and kubectl of one Kubernetes release, and etcd, into a cache outside the repository,
# one directory per program set and version, so a later run with the same pins builds nothing;
# and policy-controller's webhook, which the stack's images (tests/cluster/stack_images.py) carry.
#
#   tests/tools/install-cluster-tools.sh            # every set below
#   AIRGAP_TOOLS_CACHE=DIR                          # default: ~/.cache/airgap/go-tools (shared with
#                                                   # install-go-tools.sh; CoreDNS is built there)
#
# Versions: tests/tools/cluster-tools.txt. A Kubernetes release is not a plain `go install`:
# k8s.io/kubernetes replaces its staging modules with ./staging/..., so a throwaway module
# replaces each with its published tag.
set -euo pipefail

CACHE=${AIRGAP_TOOLS_CACHE:-$HOME/.cache/airgap/go-tools}
pin() { awk -v name="$1" '$1 == name { print $2 }' "$(dirname "$0")/cluster-tools.txt"; }
KUBERNETES=$(pin kubernetes)
ETCD=$(pin etcd)
POLICY_CONTROLLER=$(pin policy-controller)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
if ! go env GOSUMDB | grep -q off && ! timeout 10 go list -m -json golang.org/x/text@v0.3.0 >/dev/null 2>&1; then
  export GOSUMDB=off
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

# build_set NAME VERSION FUNCTION: runs FUNCTION DIR/bin SRC unless NAME-VERSION is complete.
build_set() {
  local name=$1 version=$2 build=$3
  local dir="$CACHE/$name-$version"
  if [ -f "$dir/.complete" ]; then
    echo "$name $version: cached in $dir/bin"
    return
  fi
  echo "$name $version: building (cold, on two cores: Kubernetes about 15 minutes, policy-controller about 4)"
  rm -rf "$dir.partial"
  mkdir -p "$dir.partial/bin" "$dir.partial/src"
  if ! (cd "$dir.partial/src" && "$build" "$dir.partial/bin") >"$dir.partial/build.log" 2>&1; then
    tail -n 30 "$dir.partial/build.log" >&2
    echo "$name $version: build failed (log: $dir.partial/build.log)" >&2
    exit 1
  fi
  rm -rf "$dir.partial/src"
  touch "$dir.partial/.complete"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}

build_kubernetes() {
  local bin=$1 version=${KUBERNETES#v}
  go mod init airgap-kubernetes-build
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
  local module
  for module in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9.-]*\) => \./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$module=$module@v0.${version#1.}"
  done
  go mod edit -godebug=default=go1.24
  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local command
  go get $(for command in "${commands[@]}"; do echo "k8s.io/kubernetes/cmd/$command@$KUBERNETES"; done)
  # Without the version stamps the binaries report v0.0.0 and clients refuse them.
  local minor ldflags="-s -w" package
  minor=$(echo "$version" | cut -d. -f2)
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $package.gitVersion=$KUBERNETES -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    ldflags="$ldflags -X $package.gitTreeState=clean -X $package.buildDate=2026-01-01T00:00:00Z"
  done
  for command in "${commands[@]}"; do
    go build -trimpath -ldflags "$ldflags" -o "$bin/$command" "k8s.io/kubernetes/cmd/$command"
  done
}

build_etcd() {
  local bin=$1
  go mod init airgap-etcd-build
  go get "go.etcd.io/etcd/server/v3@$ETCD" "go.etcd.io/etcd/etcdctl/v3@$ETCD"
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags "-s -w" -o "$bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
}

# policy-controller's go.mod has replace directives, so `go install ...@version` refuses it: a
# throwaway module copies them (read from the published go.mod, not written here).
build_policy_controller() {
  local bin=$1 module=github.com/sigstore/policy-controller
  go mod init airgap-policy-controller-build
  local gomod replace
  gomod=$(go mod download -json "$module@$POLICY_CONTROLLER" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
  for replace in $(go mod edit -json "$gomod" | python3 -c '
import json, sys
def side(m):
    return m["Path"] + ("@" + m["Version"] if m.get("Version") else "")
for r in json.load(sys.stdin).get("Replace") or []:
    print(side(r["Old"]) + "=" + side(r["New"]))'); do
    go mod edit -replace="$replace"
  done
  go get "$module/cmd/webhook@$POLICY_CONTROLLER"
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$POLICY_CONTROLLER" \
    -o "$bin/policy-controller" "$module/cmd/webhook"
}

build_set etcd "$ETCD" build_etcd
build_set kubernetes "$KUBERNETES" build_kubernetes
build_set policy-controller "$POLICY_CONTROLLER" build_policy_controller
