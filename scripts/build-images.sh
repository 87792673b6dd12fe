#!/usr/bin/env bash
# `make images`: the release images fairlead/operator:<version> and
# fairlead/dataplane:<version> (<version> from Cargo.toml), built without a
# container daemon: static musl binaries packed FROM scratch by
# scripts/build-image.py into dist/fairlead-{operator,dataplane}-<version>.tar.
# Load them with `docker load -i FILE` or `ctr -n k8s.io images import FILE`.
# Installs musl-tools (Debian) and the Rust musl target when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
version=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
if [ -z "$version" ]; then
  echo "build-images.sh: no version in Cargo.toml's [workspace.package]" >&2
  exit 1
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
if ! command -v musl-gcc >/dev/null 2>&1; then
  echo "installing musl-tools"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# ring compiles C and assembly: with musl-gcc for this target.
export CC_x86_64_unknown_linux_musl=musl-gcc
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/fairlead-target}
cargo build --release --locked --target "$target" \
  -p fairlead-operator --bin fairlead-operator \
  -p fairlead-dataplane --bin fairlead-dataplane
release=$CARGO_TARGET_DIR/$target/release
# The release profile keeps line tables for backtraces; the images get copies
# without them (symbol names stay): about a quarter of the size.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for b in fairlead-operator fairlead-dataplane; do
  if readelf -l "$release/$b" | grep -q 'program interpreter'; then
    echo "build-images.sh: $release/$b is not a static binary" >&2
    exit 1
  fi
  strip --strip-debug -o "$bin/$b" "$release/$b"
done

# Same commit, same bytes: file times and the config's creation time are the
# last commit's (or SOURCE_DATE_EPOCH when set).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
mkdir -p dist
labels=(--label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.licenses=Apache-2.0"
  --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)")

scripts/build-image.py --name "docker.io/fairlead/operator:$version" \
  --file "$bin/fairlead-operator:/fairlead-operator" \
  --user 65532:65532 --entrypoint /fairlead-operator --port 8080/tcp \
  --label org.opencontainers.image.title=fairlead-operator "${labels[@]}" \
  --out "dist/fairlead-operator-$version.tar"

# The dataplane runs as root in its container: VRRP needs NET_ADMIN (virtual
# IPs) and NET_RAW (raw sockets, gratuitous ARP), and capabilities added for a
# non-root user are not effective without file capabilities. The manifests drop
# every other capability.
scripts/build-image.py --name "docker.io/fairlead/dataplane:$version" \
  --file "$bin/fairlead-dataplane:/fairlead-dataplane" \
  --user 0:0 --entrypoint /fairlead-dataplane --port 9443/tcp \
  --dir /var/lib/fairlead:0755 \
  --label org.opencontainers.image.title=fairlead-dataplane "${labels[@]}" \
  --out "dist/fairlead-dataplane-$version.tar"
