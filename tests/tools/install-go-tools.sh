#!/usr/bin/env bash
# Installs the pinned Go programs the integration tests run (and that anyone can use to try the
# private Sigstore stack on one machine) into a cache outside the repository, one directory per
# program and version, so a later run with the same pins builds nothing.
#
#   tests/tools/install-go-tools.sh [NAME...]      # default: every program below
#   AIRGAP_TOOLS_CACHE=DIR                         # default: ~/.cache/airgap/go-tools
#
# Prints nothing but progress; the bin directory of NAME is $AIRGAP_TOOLS_CACHE/NAME-VERSION/bin.
set -euo pipefail

CACHE=${AIRGAP_TOOLS_CACHE:-$HOME/.cache/airgap/go-tools}

# name  version  module/path  [binary name as installed]
TOOLS=(
  "cosign      v3.1.2  github.com/sigstore/cosign/v3/cmd/cosign"
  "cosign-v2   v2.6.4  github.com/sigstore/cosign/v2/cmd/cosign"
  "rekor-server v1.5.4 github.com/sigstore/rekor/cmd/rekor-server"
  "rekor-cli   v1.5.4  github.com/sigstore/rekor/cmd/rekor-cli"
  "trillian_log_server v1.7.3 github.com/google/trillian/cmd/trillian_log_server"
  "trillian_log_signer v1.7.3 github.com/google/trillian/cmd/trillian_log_signer"
  "createtree  v1.7.3  github.com/google/trillian/cmd/createtree"
  "ct_server   v1.3.3  github.com/google/certificate-transparency-go/trillian/ctfe/ct_server"
  "fulcio      v1.8.8  github.com/sigstore/fulcio"
  "crane       v0.21.9 github.com/google/go-containerregistry/cmd/crane"
  "oras        v1.3.3  oras.land/oras/cmd/oras"
)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
# The module proxy is reachable; the checksum database may not be.
if ! go env GOSUMDB | grep -q off && ! timeout 10 go list -m -json golang.org/x/text@v0.3.0 >/dev/null 2>&1; then
  export GOSUMDB=off
fi

wanted=("$@")
for line in "${TOOLS[@]}"; do
  read -r name version module <<<"$line"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " ${name} " ]]; then
    continue
  fi
  dir="$CACHE/$name-$version"
  if [ -f "$dir/.complete" ]; then
    echo "$name $version: cached in $dir/bin"
    continue
  fi
  echo "$name $version: building $module@$version"
  rm -rf "$dir.partial"
  mkdir -p "$dir.partial/bin"
  # Trillian: only the SQL storage backends, not cloud ones (smaller, faster build).
  tags=()
  case "$module" in github.com/google/trillian/*) tags=(-tags mysql) ;; esac
  GOBIN="$dir.partial/bin" go install "${tags[@]}" "$module@$version"
  touch "$dir.partial/.complete"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
done
