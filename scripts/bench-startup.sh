#!/usr/bin/env bash
# Start-up benchmark for a binary built on `runtime`: spawn -> first 200 on GET /healthz
# (min / median / p90 / max over N runs) and idle RSS after 1 s, next to two baselines from the
# same run (/bin/true, python3 -m http.server). Budgets: start-up under 20 ms, idle RSS under 16 MiB.
# Exits 2 when a budget is missed.
#
# Usage: scripts/bench-startup.sh [BIN_NAME] [RUNS]
#   BIN_NAME  a [[bin]] of the workspace (default: runtime-hello); later, any function binary
#   RUNS      repetitions (default: 20)
set -euo pipefail

cd "$(dirname "$0")/.."
bin="${1:-runtime-hello}"
runs="${2:-20}"

target_dir="$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

cargo build --release --quiet --bin "$bin"
cargo build --release --quiet -p runtime --example bench_startup

echo "binary: $target_dir/release/$bin ($(du -h "$target_dir/release/$bin" | cut -f1) stripped)"
"$target_dir/release/examples/bench_startup" "$target_dir/release/$bin" --runs "$runs"
