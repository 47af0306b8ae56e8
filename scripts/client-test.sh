#!/usr/bin/env bash
# The client SDK test: the typed TypeScript client (clients/ts) with the official Firebase JS SDK
# against the whole local stack. Installs the package's pinned dependencies (npm ci), brings the
# stack up (`devstack up`, non-interactive: ready once it writes its address file), compiles and
# runs the Node test, and tears the stack down however the test ends. Any failure fails the run;
# nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  { echo "Missing prerequisite: Node.js 20+ and npm" >&2; exit 1; }

started=$(date +%s)
echo "-- npm ci (clients/ts, pinned in package-lock.json)"
(cd clients/ts && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

# A private temp dir: the stack's address file and emulator logs do not meet another stack's.
work="$(mktemp -d)"
export TMPDIR="$work"
state="$work/hearth-devstack/running.json"
# The Stripe endpoint secret devstack gives payment-webhook, so the test can sign as Stripe.
export HEARTH_STRIPE_WEBHOOK_SECRETS="whsec_client_test_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

echo "-- starting the local stack (cargo build -p devstack, then devstack up --base-port 0)"
cargo build --quiet -p devstack
"$CARGO_TARGET_DIR/debug/devstack" up --base-port 0 >"$work/devstack.log" 2>&1 &
stack_pid=$!
stop_stack() {
  kill -TERM "$stack_pid" 2>/dev/null || true
  wait "$stack_pid" 2>/dev/null || true
}
trap stop_stack EXIT

deadline=$((SECONDS + 180))
until [ -s "$state" ]; do
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    echo "devstack exited before it was ready; its log:" >&2
    cat "$work/devstack.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "devstack was not ready within 180 s; its log:" >&2
    cat "$work/devstack.log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "-- stack ready after $(($(date +%s) - started)) s; running the SDK test"

status=0
(cd clients/ts && HEARTH_DEVSTACK_STATE="$state" npm test --silent) || status=$?
if [ "$status" -ne 0 ]; then
  echo "the client SDK test failed; the stack's log is $work/devstack.log (last lines):" >&2
  tail -n 40 "$work/devstack.log" >&2
  trap - EXIT
  stop_stack
  exit "$status"
fi
stop_stack
trap - EXIT
rm -rf "$work"
echo "-- client SDK test passed in $(($(date +%s) - started)) s (install, stack, test, teardown)"
