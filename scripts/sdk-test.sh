#!/usr/bin/env bash
# Runs the official TypeScript SDKs (sdk-tests/*.test.mjs: @unkey/api, @unkey/ratelimit and the
# @unkey/hono middleware) against a real `keyward serve`. The Python SDK: scripts/sdk-test-python.sh.
#
#   KEYWARD_BIN=path/to/keyward scripts/sdk-test.sh [extra `node --test` flags, e.g. --test-name-pattern=protected]
#
# KEYWARD_BIN defaults to <repo>/target/debug/keyward. The tests start and stop their own server
# on a free port with a fresh SQLite database in a temp dir. Needs Node >= 20 and npm.
# KEYWARD_SDK_TEST_VERBOSE=1 echoes the server's output; KEYWARD_SDK_TEST_KEEP=1 keeps the temp dir.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

KEYWARD_BIN="${KEYWARD_BIN:-$repo/target/debug/keyward}"
case "$KEYWARD_BIN" in
  /*) ;;
  *) KEYWARD_BIN="$PWD/$KEYWARD_BIN" ;;
esac
if [[ ! -f "$KEYWARD_BIN" || ! -x "$KEYWARD_BIN" ]]; then
  echo "sdk-test: keyward binary not found or not executable: $KEYWARD_BIN" >&2
  echo "sdk-test: build it first (cargo build) or point KEYWARD_BIN at it" >&2
  exit 1
fi
export KEYWARD_BIN

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "sdk-test: '$tool' is not on PATH (Node >= 20 is required)" >&2
    exit 1
  fi
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "sdk-test: Node >= 20 is required, found $(node --version)" >&2
  exit 1
fi

cd "$repo/sdk-tests"

if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund
  touch node_modules
fi

shopt -s nullglob
test_files=(./*.test.mjs)
if (( ${#test_files[@]} == 0 )); then
  echo "sdk-test: no *.test.mjs files in $repo/sdk-tests" >&2
  exit 1
fi

exec node --test --test-reporter=spec "$@" "${test_files[@]}"
