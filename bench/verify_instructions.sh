#!/usr/bin/env bash
# What one keys.verifyKey costs in CPU instructions, this build against a baseline binary, counted
# by valgrind's callgrind (instructions, not seconds: nearly the same for the same binary and input
# whatever else the machine is doing, so a few percent show where wall-clock runs on this 2-core
# machine drift by ±10%). Counts include timer-driven work (the event writer wakes every 50 ms),
# which grows with a run's length: repeated runs differ by about 2% (hot) and 8% (random).
# Not a test; never run in CI.
#
# For each binary: a SQLite database with BENCH_KEYS keys; the server runs under callgrind
# (every thread: the handlers and the event writer with its rollups), and a client sends first
# N1 then N2 verifications in two runs; (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one
# verification with start-up and shutdown cancelled out. Hot: one key; random: uniformly random
# keys, each verified once before (cached).
#
# Usage: BENCH_BASE_BIN=path/to/baseline/keyward bench/verify_instructions.sh
# Knobs: BENCH_BIN (default target/release/keyward), BENCH_MODES ("hot random"), BENCH_KEYS (1000), BENCH_N1 (500),
# BENCH_N2 (2500).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BIN="${BENCH_BIN:-$REPO/target/release/keyward}"
BASE_BIN="${BENCH_BASE_BIN:?set BENCH_BASE_BIN to the baseline binary}"
KEYS="${BENCH_KEYS:-1000}"
N1="${BENCH_N1:-500}"
N2="${BENCH_N2:-2500}"
source "$BENCH_DIR/common.sh"
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
[[ -x "$BIN" && -x "$BASE_BIN" ]] || die "no executable $BIN or $BASE_BIN"
TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

port=7700
# start BIN DB [valgrind args...]: runs a server (under valgrind when given), sets URL, SERVER_PID.
start() {
    local bin="$1" db="$2"; shift 2
    port=$((port + 1)); URL="http://127.0.0.1:$port"
    "$@" "$bin" --database "sqlite://$db" --log warn serve --listen "127.0.0.1:$port" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 600); do curl -sf "$URL/v2/liveness" >/dev/null && return; sleep 0.1; done
    die "server did not start: $(tail -n 5 "$TMP/server.log")"
}
stop() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

# setup BIN NAME: database, root key, API, KEYS keys; sets DB, ROOT, KEYFILE (hot key first).
setup() {
    local bin="$1" dir="$TMP/$2"; mkdir -p "$dir"; DB="$dir/kw.db"
    local ws; ws="$("$bin" --database "sqlite://$DB" --log warn workspace create --name bench --json | json_field workspaceId)"
    ROOT="$("$bin" --database "sqlite://$DB" --log warn root-key create --workspace "$ws" --json | json_field key)"
    start "$bin" "$DB"
    local api; api="$(curl -s -X POST "$URL/v2/apis.createApi" -H "Authorization: Bearer $ROOT" \
        -H 'Content-Type: application/json' -d '{"name":"bench"}' | json_field data.apiId)"
    stop
    KEYFILE="$dir/keys.txt"
    python3 "$BENCH_DIR/load_keys.py" "$DB" "$api" "$KEYS" "$KEYFILE" >/dev/null
}

# client MODE N: N verifications over one keep-alive connection (hot: the first key; random:
# every key once to warm the cache, not counted apart, then N random ones).
client() {
    python3 - "$URL" "$ROOT" "$KEYFILE" "$1" "$2" <<'PY'
import http.client, json, random, sys, urllib.parse
url, root, keyfile, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
keys = open(keyfile).read().split()
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
headers = {"Authorization": "Bearer " + root, "Content-Type": "application/json"}
rng = random.Random(7)
def verify(key):
    conn.request("POST", "/v2/keys.verifyKey", json.dumps({"key": key}), headers)
    r = conn.getresponse(); body = r.read()
    assert r.status == 200 and b'"valid":true' in body, body[:200]
if mode == "random":
    for k in keys: verify(k)
for _ in range(n):
    verify(keys[0] if mode == "hot" else rng.choice(keys))
PY
}

# instructions BIN DB MODE N: total Ir of a server run serving N verifications.
instructions() {
    local out="$TMP/callgrind.out"
    rm -f "$out"
    start "$1" "$2" valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --collect-jumps=no
    client "$3" "$4"
    stop
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

log "instructions per verification ($KEYS keys, runs of $N1 and $N2 verifications)"
setup "$BASE_BIN" base; BASE_DB="$DB"; BASE_ROOT="$ROOT"; BASE_KEYS="$KEYFILE"
setup "$BIN" new; NEW_DB="$DB"; NEW_ROOT="$ROOT"; NEW_KEYS="$KEYFILE"
for mode in ${BENCH_MODES:-hot random}; do
    for which in base new; do
        if [[ $which == base ]]; then b="$BASE_BIN" DB="$BASE_DB" ROOT="$BASE_ROOT" KEYFILE="$BASE_KEYS"
        else b="$BIN" DB="$NEW_DB" ROOT="$NEW_ROOT" KEYFILE="$NEW_KEYS"; fi
        i1="$(instructions "$b" "$DB" "$mode" "$N1")"
        i2="$(instructions "$b" "$DB" "$mode" "$N2")"
        per=$(( (i2 - i1) / (N2 - N1) ))
        echo "$mode $which: $i1 Ir for $N1, $i2 Ir for $N2 -> $per Ir per verification"
        echo "$per" >"$TMP/$mode.$which"
    done
    awk -v m="$mode" -v b="$(cat "$TMP/$mode.base")" -v n="$(cat "$TMP/$mode.new")" 'BEGIN {
        printf "verify %-6s: baseline %d Ir, this build %d Ir per verification, ratio %.3f\n", m, b, n, n / b }'
done
