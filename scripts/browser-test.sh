#!/usr/bin/env bash
# Drives the embedded dashboard in headless Chromium (browser-tests/), against a real
# `keyward serve` on a fresh SQLite database.
#
#   KEYWARD_BIN=path/to/keyward scripts/browser-test.sh [extra `node --test` flags]
#
# Installs what it needs, idempotently: Debian's chromium package (through apt-get, as root or
# with sudo) when /usr/bin/chromium is missing, and playwright-core from browser-tests' lockfile.
# CHROMIUM_PATH points at another Chromium instead.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEYWARD_BIN="${KEYWARD_BIN:-$repo/target/debug/keyward}"
if [[ ! -x "$KEYWARD_BIN" ]]; then
  echo "browser-test: keyward binary not found at $KEYWARD_BIN; build it first (cargo build)" >&2
  exit 1
fi

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "browser-test: installing Debian's chromium package" >&2
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends chromium >/dev/null ||
    { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
export CHROMIUM_PATH="$chromium"

cd "$repo/browser-tests"
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi
exec node --test --test-reporter=spec "$@" ./*.test.mjs
