#!/usr/bin/env bash
# Kyverno's ClusterPolicy CRD at the pinned version (tests/tools/kyverno-crds.txt), taken from the
# github.com/kyverno/kyverno module that the Go module proxy serves (its zip holds config/crds/),
# into a cache outside the repository keyed by version: a later run downloads nothing.
#
#   tests/tools/fetch-kyverno-crds.sh       # AIRGAP_TOOLS_CACHE=DIR, default ~/.cache/airgap/go-tools
set -euo pipefail

CACHE=${AIRGAP_TOOLS_CACHE:-$HOME/.cache/airgap/go-tools}
VERSION=$(grep -v '^\s*#' "$(dirname "$0")/kyverno-crds.txt" | grep -v '^\s*$' | head -n 1)
dir="$CACHE/kyverno-crds-$VERSION"
if [ -f "$dir/.complete" ]; then
  echo "kyverno CRDs $VERSION: cached in $dir"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
if ! go env GOSUMDB | grep -q off && ! timeout 10 go list -m -json golang.org/x/text@v0.3.0 >/dev/null 2>&1; then
  export GOSUMDB=off
fi
echo "kyverno CRDs $VERSION: downloading github.com/kyverno/kyverno@$VERSION"
# Outside any module, so no go.mod of ours is read or changed.
src=$(cd / && go mod download -json "github.com/kyverno/kyverno@$VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
rm -rf "$dir.partial"
mkdir -p "$dir.partial"
cp "$src/config/crds/kyverno/kyverno.io_clusterpolicies.yaml" "$dir.partial/"
touch "$dir.partial/.complete"
rm -rf "$dir"
mv "$dir.partial" "$dir"
