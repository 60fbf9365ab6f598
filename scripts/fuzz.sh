#!/usr/bin/env bash
# Fuzzes a real `keyward serve` with schemathesis, driven by the server's own GET /openapi.json.
#
#   KEYWARD_BIN=path/to/keyward scripts/fuzz.sh [extra `st run` flags, e.g. --max-examples 200]
#
# It starts its own server on a free port with a fresh SQLite database in a temp dir, makes a
# workspace and a root key holding every permission with the CLI, seeds one resource of each kind
# (API, key, identity, permission, role, rate-limit override) whose ids the fuzzer draws from half
# of the time, so operations that need an existing resource also reach their success path, and
# runs every operation of the document through schemathesis' examples, coverage and fuzzing phases
# with the checks of scripts/fuzz.toml: no 5xx, every response's status, content type and body
# as the document declares them. It exits non-zero on any failure.
#
# schemathesis is pinned (with its dependencies) in scripts/fuzz-requirements.txt and installed
# into .fuzz/venv (gitignored), which is rebuilt only when that file changes. Needs python3 >= 3.10.
# KEYWARD_FUZZ_MAX_EXAMPLES (default 100) caps the generated cases per operation and phase;
# KEYWARD_FUZZ_KEEP=1 keeps the temp dir (server log, schemathesis report).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

KEYWARD_BIN="${KEYWARD_BIN:-$repo/target/debug/keyward}"
case "$KEYWARD_BIN" in
  /*) ;;
  *) KEYWARD_BIN="$PWD/$KEYWARD_BIN" ;;
esac
if [[ ! -x "$KEYWARD_BIN" ]]; then
  echo "fuzz: keyward binary not found or not executable: $KEYWARD_BIN (cargo build first)" >&2
  exit 1
fi
max_examples="${KEYWARD_FUZZ_MAX_EXAMPLES:-100}"
for tool in python3 curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fuzz: '$tool' is not on PATH" >&2
    exit 1
  fi
done

# ---- the pinned schemathesis, in a virtualenv rebuilt only when the requirements change ----
requirements="$repo/scripts/fuzz-requirements.txt"
venv="$repo/.fuzz/venv"
stamp="$venv/.requirements"
if [[ ! -x "$venv/bin/st" ]] || ! cmp -s "$requirements" "$stamp"; then
  echo "fuzz: installing $(grep -m1 '^schemathesis==' "$requirements") into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

# ---- a fresh server ----
tmp="$(mktemp -d "${TMPDIR:-/tmp}/keyward-fuzz.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEYWARD_FUZZ_KEEP:-}" == 1 ]]; then
    echo "fuzz: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

db="sqlite://$tmp/keyward.db"
kw() { "$KEYWARD_BIN" --database "$db" --log warn "$@"; }
workspace="$(kw workspace create --name fuzz --json | jq -r .workspaceId)"
root_key="$(kw root-key create --workspace "$workspace" --name fuzz --json | jq -r .key)"
migration_id="$(kw migration create --workspace "$workspace" --algorithm sha256 --json | jq -r .migrationId)"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# The binary itself in the background (not through `kw`, whose subshell would be the pid).
"$KEYWARD_BIN" --database "$db" --log warn serve --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$base/v2/liveness" 2>/dev/null && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "fuzz: keyward serve exited early:" >&2
    cat "$tmp/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# ---- one resource of each kind, for the fuzzer to draw ids from ----
call() {
  local out
  if ! out="$(curl -sS --fail-with-body "$base/v2/$1" -H "Authorization: Bearer $root_key" \
    -H 'Content-Type: application/json' -d "$2")"; then
    echo "fuzz: seeding with $1 $2 failed: $out" >&2
    exit 1
  fi
  printf '%s\n' "$out"
}
api_id="$(call apis.createApi '{"name":"fuzz-api"}' | jq -r .data.apiId)"
call identities.createIdentity '{"externalId":"fuzz-user"}' >/dev/null
key_json="$(call keys.createKey "{\"apiId\":\"$api_id\",\"externalId\":\"fuzz-user\"}")"
key_id="$(jq -r .data.keyId <<<"$key_json")"
key="$(jq -r .data.key <<<"$key_json")"
call permissions.createPermission '{"name":"fuzz.read","slug":"fuzz.read"}' >/dev/null
call permissions.createRole '{"name":"fuzz-admin"}' >/dev/null
call ratelimit.limit '{"namespace":"fuzz","identifier":"fuzz-user","limit":10,"duration":60000}' >/dev/null
call ratelimit.setOverride '{"namespace":"fuzz","identifier":"fuzz-user","limit":10,"duration":60000}' >/dev/null

config="$tmp/schemathesis.toml"
cp "$repo/scripts/fuzz.toml" "$config"
cat >>"$config" <<EOF

[dictionaries.apiIds]
values = ["$api_id"]
[dictionaries.keyIds]
values = ["$key_id"]
[dictionaries.keys]
values = ["$key"]
[dictionaries.externalIds]
values = ["fuzz-user"]
[dictionaries.permissions]
values = ["fuzz.read"]
[dictionaries.roles]
values = ["fuzz-admin"]
[dictionaries.namespaces]
values = ["fuzz"]
[dictionaries.migrations]
values = ["$migration_id"]
[dictionaries.queries]
values = [
  "SELECT outcome, count() AS n FROM key_verifications_v1 GROUP BY outcome",
  "SELECT identifier, countIf(passed) AS passed FROM ratelimits_v1 GROUP BY identifier",
]

[parameters]
"body.apiId" = { dictionary = "apiIds", probability = 0.5 }
"body.keyId" = { dictionary = "keyIds", probability = 0.5 }
"body.key" = { dictionary = "keys", probability = 0.5 }
"body.externalId" = { dictionary = "externalIds", probability = 0.5 }
"body.identity" = { dictionary = "externalIds", probability = 0.5 }
"body.identifier" = { dictionary = "externalIds", probability = 0.5 }
"body.permission" = { dictionary = "permissions", probability = 0.5 }
"body.role" = { dictionary = "roles", probability = 0.5 }
"body.namespace" = { dictionary = "namespaces", probability = 0.5 }
"body.permissions[*]" = { dictionary = "permissions", probability = 0.5 }
"body.roles[*]" = { dictionary = "roles", probability = 0.5 }
"body.migrationId" = { dictionary = "migrations", probability = 0.5 }
"body.query" = { dictionary = "queries", probability = 0.5 }
EOF

# ---- the run ----
# KEYWARD_FUZZ_SCHEMA=FILE fuzzes the server against another document instead (docs/compatibility.md
# ran Unkey's own spec this way); the server's own /openapi.json otherwise.
if [[ -n "${KEYWARD_FUZZ_SCHEMA:-}" ]]; then
  schema=(run "$(realpath "$KEYWARD_FUZZ_SCHEMA")" --url "$base")
else
  schema=(run "$base/openapi.json")
fi
echo "fuzz: $("$venv/bin/st" --version) against ${schema[1]}, up to $max_examples examples per operation and phase"
status=0
NO_COLOR=1 "$venv/bin/st" --config-file "$config" "${schema[@]}" \
  --header "Authorization: Bearer $root_key" \
  --max-examples "$max_examples" \
  --report junit --report-dir "$tmp/report" \
  "$@" || status=$?
# A panic in a background task (no request sees it as a 5xx) fails the run too.
if grep -q 'panicked at' "$tmp/server.log"; then
  echo "fuzz: the server panicked:" >&2
  grep -A 12 'panicked at' "$tmp/server.log" | head -n 60 >&2
  status=1
elif (( status != 0 )); then
  echo "fuzz: schemathesis failed (exit $status); the server's warnings and errors:" >&2
  tail -n 50 "$tmp/server.log" >&2
fi
exit "$status"
