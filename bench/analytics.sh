#!/usr/bin/env bash
# Analytics benchmark (SQLite). Not a test; never run in CI.
#
# 1. What recording costs: keys.verifyKey throughput of this build against a baseline binary
#    (BENCH_BASE_BIN, e.g. a release build of the commit before analytics), hot key and uniformly
#    random keys, alternating BENCH_ROUNDS rounds; prints the medians and the ratio.
# 2. What querying costs: BENCH_EVENTS (10,000,000) synthetic events of BENCH_EVENT_KEYS (10,000)
#    keys over 30 days with their rollups (bench/analytics_events.py), the storage per million
#    events, and the latency of typical queries through HTTP (median of 5).
#
# Knobs: BENCH_BIN (default target/release/keyward, built unless BENCH_BUILD=0), BENCH_BASE_BIN
# (skip part 1 when unset), BENCH_KEYS (10000), BENCH_DURATION (10s), BENCH_ROUNDS (3),
# BENCH_EVENTS, BENCH_EVENT_KEYS, BENCH_PART (1, 2 or both).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BIN="${BENCH_BIN:-$REPO/target/release/keyward}"
BASE_BIN="${BENCH_BASE_BIN:-}"
KEYS="${BENCH_KEYS:-10000}"
DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
EVENTS="${BENCH_EVENTS:-10000000}"
EVENT_KEYS="${BENCH_EVENT_KEYS:-10000}"
PART="${BENCH_PART:-both}"
export BENCH_DIR BENCH_CONNECTIONS=32 BENCH_THREADS=1
source "$BENCH_DIR/common.sh"
bench_prerequisites
if [[ "${BENCH_BUILD:-1}" != "0" && -z "${BENCH_BIN:-}" ]]; then
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
fi
[[ -x "$BIN" ]] || die "no executable $BIN"
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

port=7600
# serve BIN DB: starts a server, sets URL and the PIDS entry.
serve() {
    port=$((port + 1))
    URL="http://127.0.0.1:$port"
    "$1" --database "sqlite://$2" --log warn serve --listen "127.0.0.1:$port" >"$TMP/server-$port.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID=$!
    for _ in $(seq 100); do curl -sf "$URL/v2/liveness" >/dev/null && return; sleep 0.1; done
    die "server $1 did not start: $(tail -n 5 "$TMP/server-$port.log")"
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }
post() { curl -s -X POST "$URL/v2/$1" -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d "$2"; }

# setup BIN NAME: a database with a workspace, a root key, an API with KEYS keys; sets DB, ROOT, HOT, KEYFILE.
setup() {
    local bin="$1" dir="$TMP/$2"
    mkdir -p "$dir"; DB="$dir/kw.db"
    local ws; ws="$("$bin" --database "sqlite://$DB" --log warn workspace create --name bench --json | json_field workspaceId)"
    ROOT="$("$bin" --database "sqlite://$DB" --log warn root-key create --workspace "$ws" --json | json_field key)"
    serve "$bin" "$DB"
    local api; api="$(post apis.createApi '{"name":"bench"}' | json_field data.apiId)"
    HOT="$(post keys.createKey "{\"apiId\":\"$api\"}" | json_field data.key)"
    stop
    KEYFILE="$dir/keys.txt"
    python3 "$BENCH_DIR/load_keys.py" "$DB" "$api" "$KEYS" "$KEYFILE" >/dev/null
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# run_wrk SCRIPT: one wrk run against URL; prints req/s and the server's CPU time per request in
# microseconds (its writer thread included), which a noisy machine disturbs far less.
CLK_TCK="$(getconf CLK_TCK)"
run_wrk() {
    local c0 c1
    c0="$(cpu_ticks "$SERVER_PID")"
    wrk -t1 -c32 -d"$DURATION" --timeout 10s -s "$BENCH_DIR/$1" "$URL/v2/keys.verifyKey" >"$TMP/wrk.out" 2>&1
    # The writer finishes the last events (and a rollup write may fall in the run): wait a tick.
    sleep 1
    c1="$(cpu_ticks "$SERVER_PID")"
    parse_result "$TMP/wrk.out"
    (( R_NON2XX == 0 )) || echo "bench: WARNING: $R_NON2XX non-2xx answers" >&2
    awk -v r="$R_RPS" -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$R_REQUESTS" 'BEGIN { printf "%s %.2f\n", r, 1e6 * c / hz / n }'
}

if [[ "$PART" != 2 && -n "$BASE_BIN" ]]; then
    log "1. verification throughput, with analytics recording (this build) and without (baseline)"
    setup "$BASE_BIN" base; BASE_DB="$DB"; BASE_ROOT="$ROOT"; BASE_HOT="$HOT"; BASE_KEYS="$KEYFILE"
    setup "$BIN" new; NEW_DB="$DB"; NEW_ROOT="$ROOT"; NEW_HOT="$HOT"; NEW_KEYS="$KEYFILE"
    for round in $(seq "$ROUNDS"); do
        for which in base new; do
            if [[ $which == base ]]; then b="$BASE_BIN" DB="$BASE_DB" ROOT="$BASE_ROOT" HOT="$BASE_HOT" KEYFILE="$BASE_KEYS"
            else b="$BIN" DB="$NEW_DB" ROOT="$NEW_ROOT" HOT="$NEW_HOT" KEYFILE="$NEW_KEYS"; fi
            serve "$b" "$DB"
            export BENCH_ROOT_KEY="$ROOT" BENCH_VERIFY_KEY="$HOT" BENCH_KEYFILE="$KEYFILE"
            # Every key once, so the random run measures cached keys.
            wrk -t1 -c32 -d"$DURATION" -s "$BENCH_DIR/verify_random.lua" "$URL/v2/keys.verifyKey" >/dev/null 2>&1
            read -r hot hot_cpu < <(run_wrk verify_one.lua); sleep 2
            read -r random random_cpu < <(run_wrk verify_random.lua)
            echo "round $round $which: hot $hot req/s ($hot_cpu us CPU each), random $random req/s ($random_cpu us CPU each)"
            echo "$hot" >>"$TMP/$which.hot"; echo "$random" >>"$TMP/$which.random"
            echo "$hot_cpu" >>"$TMP/$which.hot.cpu"; echo "$random_cpu" >>"$TMP/$which.random.cpu"
            stop; sleep 2
        done
    done
    for scenario in hot random; do
        b="$(median <"$TMP/base.$scenario")"; n="$(median <"$TMP/new.$scenario")"
        bc="$(median <"$TMP/base.$scenario.cpu")"; nc="$(median <"$TMP/new.$scenario.cpu")"
        awk -v s="$scenario" -v b="$b" -v n="$n" -v bc="$bc" -v nc="$nc" 'BEGIN {
            printf "verify %-6s: baseline %8.0f req/s (%5.1f us CPU each), with analytics %8.0f req/s (%5.1f us), throughput ratio %.3f, CPU ratio %.3f\n", s, b, bc, n, nc, n / b, nc / bc }'
    done
fi

if [[ "$PART" != 1 ]]; then
    log "2. queries over $EVENTS events of $EVENT_KEYS keys (30 days)"
    dir="$TMP/events"; mkdir -p "$dir"; DB="$dir/kw.db"
    ws="$("$BIN" --database "sqlite://$DB" --log warn workspace create --name bench --json | json_field workspaceId)"
    ROOT="$("$BIN" --database "sqlite://$DB" --log warn root-key create --workspace "$ws" --json | json_field key)"
    python3 "$BENCH_DIR/analytics_events.py" "$DB" "$ws" "$EVENTS" "$EVENT_KEYS" 30
    echo "database file: $(du -h "$DB" | cut -f1)"
    serve "$BIN" "$DB"
    time_query() { # time_query LABEL ROUTE BODY: median of 5 of curl's total time, and the answer's size
        local label="$1" route="$2" body="$3"
        : >"$TMP/times"
        for _ in 1 2 3 4 5; do
            curl -s -o "$TMP/answer" -w '%{time_total}\n' -X POST "$URL/v2/$route" \
                -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' -d "$body" >>"$TMP/times"
        done
        median <"$TMP/times" | awk -v l="$label" -v b="$(wc -c <"$TMP/answer")" '{ printf "%-58s %8.1f ms  (%d bytes)\n", l, $1 * 1000, b }'
        if grep -q '"error"' "$TMP/answer"; then echo "  answer: $(head -c 300 "$TMP/answer")"; fi
    }
    q() { printf '{"query":"%s"}' "$1"; }
    time_query "one key, daily counts over 30 days (day rollup)" analytics.getVerifications \
        "$(q "SELECT time, sum(count) AS n FROM key_verifications_per_day_v1 WHERE key_id = 'key_bench_42' AND time >= now() - INTERVAL 30 DAY GROUP BY time ORDER BY time")"
    time_query "workspace, count by outcome over 30 days (day rollup)" analytics.getVerifications \
        "$(q "SELECT outcome, sum(count) AS n FROM key_verifications_per_day_v1 WHERE time >= now() - INTERVAL 30 DAY GROUP BY outcome")"
    time_query "workspace, count by outcome over 30 days (hour rollup)" analytics.getVerifications \
        "$(q "SELECT outcome, sum(count) AS n FROM key_verifications_per_hour_v1 WHERE time >= now() - INTERVAL 30 DAY GROUP BY outcome")"
    time_query "workspace, count by outcome over 1 day (raw table)" analytics.getVerifications \
        "$(q "SELECT outcome, count() AS n FROM key_verifications_v1 WHERE time >= now() - INTERVAL 1 DAY GROUP BY outcome")"
    time_query "one key, daily counts over 30 days (raw table)" analytics.getVerifications \
        "$(q "SELECT toStartOfDay(fromUnixTimestamp64Milli(time)) AS day, count() AS n FROM key_verifications_v1 WHERE key_id = 'key_bench_42' AND time >= now() - INTERVAL 30 DAY GROUP BY day")"
    time_query "getUsage of the workspace (30 days, daily)" analytics.getUsage '{}'
    stop
fi
