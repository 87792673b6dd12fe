#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 30),
# starting from its seed corpus in fuzz/seeds/<target>; `--build` only builds
# them (CI builds them while the tests run). Needs the nightly
# toolchain and cargo-fuzz (installed from crates.io when missing). Build
# caches, the growing corpus and crash artifacts live outside the checkout,
# in $FAIRLEAD_FUZZ_DIR (default ~/.cache/fairlead-fuzz). A crash fails the
# script; its input is in the artifacts directory it names.
#
#   scripts/fuzz.sh            # every target, 30 s each
#   scripts/fuzz.sh 300 sni    # one target, 5 minutes
#   scripts/fuzz.sh --build    # build only
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [ "${1:-}" = --build ]; then
  build_only=true
  shift
fi
seconds=${1:-30}
shift || true
work=${FAIRLEAD_FUZZ_DIR:-$HOME/.cache/fairlead-fuzz}
mkdir -p "$work"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sni vrrp_packet vrrp_receive manifest admin_config http1)
fi
# No sanitizer: the code is safe Rust (unsafe_code is forbidden), so
# libFuzzer's coverage and the targets' assertions are what find defects;
# ASan would only slow the run down. Debug assertions stay on.
build=(--sanitizer none --debug-assertions --target-dir "$work/target")
cargo +nightly fuzz build "${build[@]}"
$build_only && exit 0
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target/"
  log="$work/$target.log"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $target for ${seconds}s (corpus $corpus)"
  status=0
  cargo +nightly fuzz run "${build[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+.*DONE|stat::(number_of_executed_units|new_units_added|peak_rss_mb))|ERROR|panicked|SUMMARY|Test unit written' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$log" >&2
    echo "fuzz: $target FAILED (exit $status); log $log, inputs in $artifacts" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
