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

PINS="$(dirname "$0")/go-tools.txt"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
# The module proxy is reachable; the checksum database may not be.
if ! go env GOSUMDB | grep -q off && ! timeout 10 go list -m -json golang.org/x/text@v0.3.0 >/dev/null 2>&1; then
  export GOSUMDB=off
fi

# Some modules' `go install pkg@version` fails at the proxy's version list (seen: oras answers
# 403 there); the module itself downloads fine, so build the package inside the module cache.
build_from_module_cache() {
  local module=$1 version=$2 bin=$3; shift 3
  local root=$module
  until [ -z "$root" ]; do
    if go mod download "$root@$version" 2>/dev/null; then break; fi
    case "$root" in */*) root=${root%/*} ;; *) root="" ;; esac
  done
  [ -n "$root" ] || return 1
  local src
  src=$(go mod download -json "$root@$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  local pkg=".${module#"$root"}"
  (cd "$src" && go build "$@" -o "$bin/$(basename "$module")" "$pkg")
}

mkdir -p "$CACHE"
# One builder at a time: a second run waits, then finds the programs cached.
exec 9>"$CACHE/.lock"
flock 9

wanted=("$@")
grep -v '^\s*#' "$PINS" | grep -v '^\s*$' | while read -r name version module; do
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
  if ! GOBIN="$dir.partial/bin" go install "${tags[@]}" "$module@$version" >"$dir.partial/build.log" 2>&1 \
     && ! build_from_module_cache "$module" "$version" "$dir.partial/bin" "${tags[@]}" >>"$dir.partial/build.log" 2>&1; then
    tail -n 30 "$dir.partial/build.log" >&2
    echo "$name $version: build failed (log: $dir.partial/build.log)" >&2
    exit 1
  fi
  touch "$dir.partial/.complete"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
done
