#!/usr/bin/env bash
# Checks (and where this machine's registries allow, installs) what builds and tests need.
# Fails loudly, naming what is missing; never lets tests skip quietly.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1: $2"); }

need cargo "the Rust toolchain (rustup, stable >= 1.91)"
need gcloud "the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
need java "Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
need setsid "util-linux (setsid), used to run emulators in their own process group"
need bash "bash"
need node "Node.js 20+ and npm (for firebase-tools, the Auth emulator)"
need npm "npm (for firebase-tools, the Auth emulator)"

if command -v gcloud >/dev/null 2>&1; then
  sdk_root="$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)"
  for component in cloud-firestore-emulator pubsub-emulator; do
    if [ -n "$sdk_root" ] && [ ! -d "$sdk_root/platform/$component" ]; then
      missing+=("gcloud component $component: gcloud components install $component (or the google-cloud-cli-${component/cloud-/} package)")
    fi
  done
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "Missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# firebase-tools (the Auth emulator) is pinned in package-lock.json and installed locally.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/node_modules/.bin/firebase" ]; then
  echo "installing firebase-tools from package-lock.json (npm ci)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "prerequisites: $(cargo --version), $(gcloud --version 2>/dev/null | head -1), $(java -version 2>&1 | head -1), node $(node --version), firebase-tools $("$root/node_modules/.bin/firebase" --version 2>/dev/null)"
