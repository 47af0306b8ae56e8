#!/usr/bin/env bash
# The one test command: every unit, integration, emulator-backed and tidy test of the workspace.
#
# Integration tests start the official Firestore and Pub/Sub emulators themselves (once per test
# binary, through crates/testkit) unless FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST point at
# running ones. Nothing is skipped: a missing prerequisite fails the run and says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/prereqs.sh

# Every query shape store sends during the suite is recorded here, then checked against
# firestore.indexes.json: the emulator needs no index, production does (testkit::indexes).
export HEARTH_QUERY_LOG_DIR="$CARGO_TARGET_DIR/hearth-query-shapes"
rm -rf "$HEARTH_QUERY_LOG_DIR"
mkdir -p "$HEARTH_QUERY_LOG_DIR"

echo "== cargo test --workspace (emulator-backed tests included)"
cargo test --workspace --all-targets --no-fail-fast "$@"

echo "== client SDK test: clients/ts with the official Firebase JS SDK against the local stack (scripts/client-test.sh)"
scripts/client-test.sh

echo "== every recorded Firestore query has a serving index (firestore.indexes.json)"
cargo run --quiet -p testkit --bin check-indexes -- "$HEARTH_QUERY_LOG_DIR" firestore.indexes.json

echo "== the cost model prices every pinned event (docs/costs.json) and runs on the sample traffic"
python3 scripts/cost-model docs/cost-model/traffic.sample.toml > /dev/null
