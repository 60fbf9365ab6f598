#!/usr/bin/env bash
# Runs the official Python SDK, `unkey.py` (sdk-tests/python/), against a real `keyward serve`.
#
#   KEYWARD_BIN=path/to/keyward scripts/sdk-test-python.sh [extra pytest flags, e.g. -k overrides]
#
# KEYWARD_BIN defaults to <repo>/target/debug/keyward. The tests start and stop their own server
# on a free port with a fresh SQLite database in a temp dir. Needs Python >= 3.10 with the venv
# module (KEYWARD_PYTHON picks the interpreter; default python3). The SDK and pytest, pinned in
# sdk-tests/python/requirements.txt, are installed from PyPI into sdk-tests/python/.venv the first
# time and again only when that file (or the interpreter) changes.
# KEYWARD_SDK_TEST_VERBOSE=1 prints the server's output; KEYWARD_SDK_TEST_KEEP=1 keeps the temp dir.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

KEYWARD_BIN="${KEYWARD_BIN:-$repo/target/debug/keyward}"
case "$KEYWARD_BIN" in
  /*) ;;
  *) KEYWARD_BIN="$PWD/$KEYWARD_BIN" ;;
esac
if [[ ! -f "$KEYWARD_BIN" || ! -x "$KEYWARD_BIN" ]]; then
  echo "sdk-test-python: keyward binary not found or not executable: $KEYWARD_BIN" >&2
  echo "sdk-test-python: build it first (cargo build) or point KEYWARD_BIN at it" >&2
  exit 1
fi
export KEYWARD_BIN

python="${KEYWARD_PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "sdk-test-python: '$python' is not on PATH (Python >= 3.10 is required)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "sdk-test-python: Python >= 3.10 is required, found $("$python" --version 2>&1)" >&2
  exit 1
fi

cd "$repo/sdk-tests/python"

# The venv is current when it was built from this requirements file by this interpreter.
want="$( { sha256sum requirements.txt; "$python" -c 'import sys; print(sys.version, sys.executable)'; } | sha256sum | cut -d' ' -f1)"
stamp=.venv/.keyward-requirements
if [[ ! -x .venv/bin/python || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "sdk-test-python: installing sdk-tests/python/requirements.txt into sdk-tests/python/.venv"
  rm -rf .venv
  "$python" -m venv .venv
  PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install --quiet --no-input -r requirements.txt
  echo "$want" >"$stamp"
fi

export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
