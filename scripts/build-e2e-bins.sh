#!/usr/bin/env bash
# Builds the e2e test binaries, one per Go module in e2e/go/ (etcd, kube-apiserver,
# kubectl, ...), into ${FAIRLEAD_E2E_BIN:-~/.cache/fairlead-e2e/<k8s version>}, each
# only when missing or its go.mod changed, and prints that directory. Go's own caches (GOCACHE, GOMODCACHE) stay where
# `go env` puts them, outside the checkout. Needs Go >= 1.26 and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/../e2e/go"
# The release pinned by the kube-apiserver module; kubectl and etcd follow it.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit } $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' kube-apiserver/go.mod)
[ -n "$k8s_version" ] || { echo "no k8s.io/kubernetes version in e2e/go/kube-apiserver/go.mod" >&2; exit 1; }
bin=${FAIRLEAD_E2E_BIN:-$HOME/.cache/fairlead-e2e/$k8s_version}
if ! command -v go >/dev/null 2>&1; then
  echo "go is missing: install Go >= 1.26 (https://go.dev/dl) to build the e2e binaries" >&2
  exit 1
fi
mkdir -p "$bin"
# What `kubectl version` and the API server's /version report (without these: v0.0.0-master).
minor=${k8s_version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
# One binary per module directory. A binary is rebuilt when its go.mod changed
# since it was built (the stamp beside it holds a copy).
for dir in */; do
  name=${dir%/}
  [ -f "$name/go.mod" ] || continue
  [ -x "$bin/$name" ] && cmp -s "$name/go.mod" "$bin/.$name.go.mod" && continue
  echo "building $name into $bin" >&2
  # Into a temporary name first, so an interrupted build never leaves a binary that looks done.
  (cd "$name" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$bin/.$name.tmp" .)
  mv "$bin/.$name.tmp" "$bin/$name"
  cp "$name/go.mod" "$bin/.$name.go.mod"
done
echo "$bin"
