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

# Python packages of the infrastructure tests and scripts/deploy.sh (python-hcl2, PyYAML),
# pinned in infra/requirements-test.txt; installed from PyPI when missing or at another version.
python_requirements_met() {
  python3 - "$root/infra/requirements-test.txt" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, pinned = line.split("==")
        assert version(name) == pinned, (name, version(name), pinned)
PY
}
if ! python_requirements_met; then
  command -v python3 >/dev/null 2>&1 ||
    { echo "Missing prerequisite: python3 (Debian: apt-get install python3 python3-pip)" >&2; exit 1; }
  echo "installing the infra test packages (python3 -m pip install -r infra/requirements-test.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r "$root/infra/requirements-test.txt" ||
    { echo "Missing prerequisite: python-hcl2 and PyYAML (python3 -m pip install -r infra/requirements-test.txt)" >&2; exit 1; }
  python_requirements_met ||
    { echo "Missing prerequisite: infra/requirements-test.txt is still not satisfied after pip install" >&2; exit 1; }
fi
