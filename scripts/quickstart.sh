#!/usr/bin/env bash
# The quickstart: two demo HTTP servers (and two TCP ones), and fairlead
# running the example manifests in deploy/examples/ in standalone mode.
# `--once` sends a few requests and exits instead of serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/fairlead-target}
scripts/install-deps.sh curl nc
cargo build --release -q -p fairlead-operator --bin fairlead -p fairlead-tests --bin demo-backend
bin=$CARGO_TARGET_DIR/release
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$bin/demo-backend" --listen 127.0.0.1:9001 --name srv1 >/dev/null & pids+=($!)
"$bin/demo-backend" --listen 127.0.0.1:9002 --name srv2 >/dev/null & pids+=($!)
"$bin/demo-backend" --listen 127.0.0.1:9101 --name tcp1 --mode tcp >/dev/null & pids+=($!)
"$bin/demo-backend" --listen 127.0.0.1:9102 --name tcp2 --mode tcp >/dev/null & pids+=($!)
"$bin/fairlead" run -f deploy/examples/ & pids+=($!)
# Wait for the listener with a bare connection: a request would take srv1's turn.
for _ in $(seq 1 100); do
  (: </dev/tcp/127.0.0.1/8080) 2>/dev/null && break
  sleep 0.1
done
echo
echo "fairlead is balancing http://localhost:8080 across srv1 and srv2:"
for _ in 1 2 3 4; do printf '  curl localhost:8080  ->  %s' "$(curl -s localhost:8080)"; echo; done
[ "${1:-}" = "--once" ] && exit 0
echo
echo "Edit deploy/examples/*.yaml and fairlead reloads it; Ctrl-C stops everything."
wait "${pids[-1]}"
