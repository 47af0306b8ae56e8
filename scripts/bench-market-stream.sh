#!/usr/bin/env bash
# market-stream against a Python listener written the seed's way (google-cloud-firestore
# on_snapshot, pandas: benches/market-stream/listener.py), on the same emulators in the same
# run: candles per second, write-to-bar latency p50/p99 (both from Firestore's timestamps) and
# Firestore operations per candle, with the ratios. The Rust side goes through devstack's
# Eventarc bridge to the real function (crates/devstack/examples/market_stream.rs).
#
# Installs what it needs: a virtualenv with benches/market-stream/requirements.txt (pinned) at
# $HEARTH_MARKET_VENV (default ~/.venvs/hearth-market); the emulators come from the
# repository's firebase-tools and testkit, as for the tests (scripts/prereqs.sh).
#
# Usage: scripts/bench-market-stream.sh [--debug] [example args: --instruments 5 --count 200 --rate 0]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=(--release)
if [ "${1:-}" = "--debug" ]; then profile=(); shift; fi

venv="${HEARTH_MARKET_VENV:-$HOME/.venvs/hearth-market}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/market-stream/requirements.txt

cargo run "${profile[@]}" --quiet -p devstack --example market_stream -- --python "$venv/bin/python" "$@"
