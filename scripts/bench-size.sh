#!/usr/bin/env bash
# Size and idle memory of every function's release binary: the stripped size, and the RSS one
# second after the first 200 on /healthz (median of RUNS starts). Firestore and Pub/Sub connect
# lazily, so the emulator hosts point at a closed port; the function settings below are the
# minimum each config accepts.
#
# Usage: scripts/bench-size.sh [RUNS]            (default 3)
#        BINARIES_DIR=/some/dir scripts/bench-size.sh   (measure binaries built elsewhere, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
functions=(api feed-fanout market-stream notifier onboarding payment-processor payment-webhook pulse scheduled-cleanup search signup-hook)

if [[ -z "${BINARIES_DIR:-}" ]]; then
  target_dir="$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  cargo build --release --quiet $(printf -- '-p %s ' "${functions[@]}")
  BINARIES_DIR="$target_dir/release"
fi

export GOOGLE_CLOUD_PROJECT=demo-bench HEARTH_LOG_FORMAT=json RUST_LOG=warn \
  FIRESTORE_EMULATOR_HOST=127.0.0.1:9 PUBSUB_EMULATOR_HOST=127.0.0.1:9 FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9 \
  HEARTH_STRIPE_WEBHOOK_SECRETS=whsec_bench HEARTH_OIDC_AUDIENCE=https://bench.example \
  HEARTH_OIDC_ALLOWED_EMAILS=push@demo-bench.iam.gserviceaccount.com HEARTH_BLOCKING_AUDIENCE=https://bench.example

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

idle_rss_kib() { # binary -> VmRSS in KiB, 1 s after the first 200 on /healthz
  local port pid rss
  port="$(free_port)"
  PORT="$port" "$1" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break
    kill -0 "$pid" 2>/dev/null || { echo "$1 exited before answering" >&2; return 1; }
    sleep 0.05
  done
  sleep 1
  rss="$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$rss"
}

printf '| %-18s | %10s | %14s |\n' binary "size (MiB)" "idle RSS (MiB)"
printf '|%s|%s|%s|\n' "--------------------" "------------" "----------------"
for f in "${functions[@]}"; do
  bin="$BINARIES_DIR/$f"
  samples=()
  for _ in $(seq 1 "$runs"); do samples+=("$(idle_rss_kib "$bin")"); done
  median="$(printf '%s\n' "${samples[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")"
  awk -v f="$f" -v size="$(stat -c %s "$bin")" -v rss="$median" \
    'BEGIN { printf "| %-18s | %10.1f | %14.1f |\n", f, size / 1048576, rss / 1024 }'
done
