#!/usr/bin/env bash
# keyward load benchmark: a release server on SQLite, driven by wrk on loopback.
# Prints requests/s, p50 and p99 of each scenario, with its ratio to GET /v2/liveness measured on
# the same server in the same run, and a summary against the targets. Not a test; never run in CI.
# With BENCH_CLUSTER=1 it then runs bench/cluster.sh (PostgreSQL-only vs two nodes with Redis).
# See bench/README.md for the scenarios and the BENCH_* knobs.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BIN="${BENCH_BIN:-$REPO/target/release/keyward}"

DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-1}"
KEYS="${BENCH_KEYS:-1000000}"
KEEP="${BENCH_KEEP:-0}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-600}"
WARMUP_TIMEOUT="${BENCH_WARMUP_TIMEOUT:-3600}"
SETTLE="${BENCH_SETTLE:-15}"
NOISE="${BENCH_NOISE:-15}"
RL_ROTATE="${BENCH_RL_ROTATE:-100000}"
RL_MEMORY_IDS="${BENCH_RL_MEMORY_IDS:-1000000}"
CRASH="${BENCH_CRASH:-0}"
ROUNDS="${BENCH_ROUNDS:-1}"
export BENCH_DIR BENCH_CONNECTIONS="$CONNECTIONS" BENCH_THREADS="$THREADS"

# log, die, bench_prerequisites, wait_no_rustc, json_field, plain, cpu_ticks, machine_ticks,
# end_wrk_when_marked, parse_result, ms
source "$BENCH_DIR/common.sh"

# ---- prerequisites -------------------------------------------------------------------------

bench_prerequisites

if [[ -n "${BENCH_BIN:-}" || "${BENCH_BUILD:-1}" == "0" ]]; then
    [[ -x "$BIN" ]] || die "there is no executable $BIN (BENCH_BIN, or BENCH_BUILD=0 with the release build)"
    echo "bench: using the existing $BIN (built $(date -r "$BIN" '+%F %T'))"
else
    log "building the release binary"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed (BENCH_BUILD=0 runs the existing binary)"
fi

wait_no_rustc

# ---- workspace, temp dir, server -----------------------------------------------------------

TMP="$(mktemp -d "${TMPDIR:-/tmp}/keyward-bench.XXXXXX")"
DB_PATH="$TMP/kw.db"
DB_URL="sqlite://$DB_PATH"
SERVER_PID=""
WRK_PID=""

cleanup() {
    local status=$?
    if [[ -n "$WRK_PID" ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill "$WRK_PID" 2>/dev/null || true; fi
    stop_server
    if [[ "$KEEP" == "1" ]]; then
        echo "bench: kept $TMP (database, key file, server log, wrk output)"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 300); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: server $SERVER_PID did not stop within 30s of SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="${BENCH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
BASE="http://127.0.0.1:$PORT"

WORKSPACE="$("$BIN" --database "$DB_URL" --log warn workspace create --name bench --json | json_field workspaceId)"
ROOT_KEY="$("$BIN" --database "$DB_URL" --log warn root-key create --workspace "$WORKSPACE" --name bench --json | json_field key)"
export BENCH_ROOT_KEY="$ROOT_KEY"

start_server() {
    "$BIN" --database "$DB_URL" --log warn serve --listen "127.0.0.1:$PORT" >>"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 600); do
        if curl -fsS -o /dev/null "$BASE/v2/liveness" 2>/dev/null; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" || true
            SERVER_PID=""
            tail -n 40 "$TMP/server.log" >&2
            die "the server exited during start-up (log above)"
        fi
        sleep 0.1
    done
    tail -n 40 "$TMP/server.log" >&2
    die "GET /v2/liveness did not answer within 60s"
}

rss_of() { # rss_of PID FIELD -> KiB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# post ROUTE BODY: prints the response body; the status goes to $TMP/status.
post() {
    curl -sS -o "$TMP/response" -w '%{http_code}' -X POST "$BASE/v2/$1" \
        -H "Authorization: Bearer $ROOT_KEY" -H "Content-Type: application/json" \
        -d "$2" >"$TMP/status" || echo 000 >"$TMP/status"
    cat "$TMP/response"
}
status() { cat "$TMP/status"; }

# Verification events are written to key_verifications in the background (and dropped when their
# queue is full): count_events prints how many rows there are, events_since reports the growth.
count_events() {
    python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
print(db.execute("SELECT count(*) FROM key_verifications").fetchone()[0])' "$DB_PATH" 2>/dev/null || echo 0
}
events_since() { # events_since COUNT_BEFORE VERIFICATIONS
    settle $(( SETTLE > 120 ? SETTLE : 120 ))
    local now; now="$(count_events)"
    local stored=$((now - $1)) lost=""
    (( stored >= $2 )) || lost=": at least $(( $2 - stored )) verification events were dropped"
    echo "  key_verifications grew by $stored rows for $2 verifications answered to wrk (curl checks and requests cut off at the end add a few)$lost"
}

# ---- results ---------------------------------------------------------------------------------

# One entry per scenario: name|rps|p50_us|p99_us|ratio|target|met|note
RESULTS=()
R_NOTE=""
BASE_RPS=""
VERIFIED=0 # verifications answered during wrk runs, to compare with the events stored

# settle [MAX_SECONDS]: waits (up to BENCH_SETTLE seconds) until the server is idle.
server_ticks() { cpu_ticks "$SERVER_PID"; }
settle() { wait_idle "the server" "${1:-$SETTLE}" server_ticks; }

# run_wrk NAME SCRIPT URL: runs one measured scenario and sets R_* from its result line; prints
# how much CPU the server, wrk and everything else on the machine used meanwhile. A run during
# which other processes used more than BENCH_NOISE percent of a core is marked noisy.
run_wrk() {
    local name="$1" script="$2" url="$3"
    local out="$TMP/wrk-$name.out" t0 t1 c0 c1 m0 m1 s0 s1 wu ws mark logged
    wait_no_rustc
    settle
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/$script $url"
    mark="$(wc -l <"$TMP/server.log")"
    read -r m0 s0 <<<"$(machine_ticks)"
    c0="$(cpu_ticks "$SERVER_PID")"; t0="$(date +%s.%N)"
    /usr/bin/time -f '%U %S' -o "$TMP/time-$name" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency \
        -s "$BENCH_DIR/$script" "$url" >"$out" 2>&1 || { cat "$out"; return 1; }
    c1="$(cpu_ticks "$SERVER_PID")"; t1="$(date +%s.%N)"
    read -r m1 s1 <<<"$(machine_ticks)"
    grep -v '^BENCH_RESULT' "$out" | sed 's/^/  | /'
    parse_result "$out"
    read -r wu ws <"$TMP/time-$name"
    awk -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v st=$((s1 - s0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        -v n="$R_REQUESTS" -v wu="$wu" -v ws="$ws" 'BEGIN {
        secs = t1 - t0; server = c / hz; client = wu + ws; other = m / hz - server - client
        if (other < 0) other = 0
        printf "  cpu: server %.0f%% of a core (%.1f us/request), wrk %.0f%% (%.1f us/request), other processes %.0f%%, steal %.0f%%\n",
               100 * server / secs, 1e6 * server / n, 100 * client / secs, 1e6 * client / n,
               100 * other / secs, 100 * st / hz / secs
        print int(100 * other / secs) > "/dev/stderr" }' 2>"$TMP/other-$name"
    R_NOISE=""
    if (( $(cat "$TMP/other-$name") > NOISE )); then
        R_NOISE="other processes used $(cat "$TMP/other-$name")% of a core: noisy"
        echo "  WARNING: $R_NOISE"
    fi
    # What the server logged (at --log warn) during the run.
    logged="$(tail -n +$((mark + 1)) "$TMP/server.log" | plain | grep -E ' (WARN|ERROR) ' || true)"
    R_LOGGED=""
    if [[ -n "$logged" ]]; then
        R_LOGGED="server logged $(wc -l <<<"$logged") warnings, the last: $(tail -n 1 <<<"$logged" | cut -d' ' -f4-)"
        echo "  $R_LOGGED"
    fi
}

# run_ratio NAME SCRIPT URL: run_wrk for a scenario with a ratio target. With BENCH_ROUNDS=N > 1
# it runs N rounds, each a liveness run and then the scenario, so each ratio compares two runs
# taken seconds apart: R_RPS becomes the median rate of the scenario's runs, R_RATIO the median of
# the N ratios (R_RATIOS lists them all), R_REQUESTS the requests of all runs. Single runs on two
# shared cores move by several percent; the median of paired rounds is what to compare with a target.
run_ratio() {
    local name="$1" i live rates=() ratios=() requests=0
    R_RATIO=""
    R_RATIOS=""
    if (( ROUNDS <= 1 )); then
        run_wrk "$@"
        return
    fi
    for (( i = 1; i <= ROUNDS; i++ )); do
        echo "round $i of $ROUNDS: liveness, then $name"
        run_wrk "liveness-$name-$i" liveness.lua "$BASE/v2/liveness" >"$TMP/round-liveness.out" || {
            cat "$TMP/round-liveness.out"; return 1; }
        grep -E '^  (cpu|=>|WARNING)' "$TMP/round-liveness.out" || true
        live="$R_RPS"
        echo "  liveness: $live req/s"
        run_wrk "$@"
        rates+=("$R_RPS")
        ratios+=("$(awk -v a="$R_RPS" -v b="$live" 'BEGIN { printf "%.3f", a / b }')")
        requests=$((requests + R_REQUESTS))
    done
    R_RPS="$(printf '%s\n' "${rates[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
    R_RATIO="$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')"
    R_RATIOS="${ratios[*]}"
    R_REQUESTS="$requests"
    echo "  rounds: ratios ${R_RATIOS// /, } (median $R_RATIO); rates ${rates[*]} req/s (median $R_RPS)"
}

# record NAME KIND TARGET [REF_RPS REF_LABEL]: KIND is "ratio" (target is a minimum ratio to
# liveness), "rel" (a minimum ratio to REF_RPS, the rate of scenario REF_LABEL in this run; the
# ratio column stays the one to liveness, the met column shows the ratio to REF_LABEL), "rps"
# (target is a minimum requests/s), "text" (TARGET is shown as is, nothing is met) or "none".
# R_NOTE, when set, starts the row's note (and is cleared).
record() {
    local name="$1" kind="$2" target="$3" ratio="-" met="-" tgt="-" note="${R_NOTE:-}" rel
    R_NOTE=""
    if [[ -n "${R_RATIO:-}" ]]; then
        # Paired rounds (BENCH_ROUNDS): the median of the ratios to the liveness run before each.
        ratio="$R_RATIO"
        note="${note:+$note; }median of $ROUNDS paired rounds: ${R_RATIOS// /, }"
        R_RATIO=""
    elif [[ -n "$BASE_RPS" ]]; then
        ratio="$(awk -v a="$R_RPS" -v b="$BASE_RPS" 'BEGIN { printf "%.2f", a / b }')"
    fi
    case "$kind" in
        ratio)
            tgt=">= ${target}x"
            met="$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r + 0 >= t + 0) ? "yes" : "NO" }')" ;;
        rel)
            rel="$(awk -v a="$R_RPS" -v b="$4" 'BEGIN { printf "%.2f", a / b }')"
            tgt=">= ${target}x of $5"
            met="$(awk -v r="$rel" -v t="$target" 'BEGIN { print (r + 0 >= t + 0) ? "yes" : "NO" }') (${rel}x $5)"
            note="${note:+$note; }${rel}x the rate of $5 ($(printf '%.0f' "$4") req/s) in this run" ;;
        text)
            tgt="$target" ;;
        rps)
            tgt=">= $target/s"
            met="$(awk -v r="$R_RPS" -v t="$target" 'BEGIN { print (r + 0 >= t + 0) ? "yes" : "NO" }')" ;;
    esac
    if (( R_NON2XX > 0 || R_SOCKERR > 0 )); then
        note="${note:+$note; }$R_NON2XX non-2xx, $R_SOCKERR socket errors of $R_REQUESTS"
        [[ "$met" == yes* ]] && met="NO (errors)"
    fi
    [[ -z "$R_LOGGED" ]] || note="${note:+$note; }$R_LOGGED"
    if [[ -n "$R_NOISE" ]]; then
        note="${note:+$note; }$R_NOISE"
        met="$met (noisy)"
    fi
    RESULTS+=("$name|$R_RPS|$R_P50|$R_P99|$ratio|$tgt|$met|$note")
    printf '  => %s: %s req/s, p50 %s, p99 %s, ratio to liveness %s%s\n' "$name" "$R_RPS" \
        "$(ms "$R_P50")" "$(ms "$R_P99")" "$ratio" "${note:+ ($note)}"
}

failed() { # failed NAME TARGET REASON
    RESULTS+=("$1|-|-|-|-|$2|FAILED|$3")
    printf '  => %s: FAILED: %s\n' "$1" "$3"
}

# ---- run -----------------------------------------------------------------------------------

log "keyward bench: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "database $DB_PATH ($(df -T "$TMP" | awk 'NR == 2 { print $2 }')), port $PORT, duration $DURATION, threads $THREADS, connections $CONNECTIONS, keys $KEYS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

start_server
echo "server pid $SERVER_PID"

API_ID="$(post apis.createApi '{"name":"bench"}' | json_field data.apiId)" \
    || die "apis.createApi failed: HTTP $(status): $(cat "$TMP/response")"
export BENCH_API_ID="$API_ID"
echo "workspace $WORKSPACE, api $API_ID"

log "a. GET /v2/liveness (baseline)"
run_wrk liveness liveness.lua "$BASE/v2/liveness"
BASE_RPS="$R_RPS"
record "liveness" none ""

# b, c, f, g: create the key, check one verification by hand, then drive it.
# verify_scenario NAME CREATE_BODY KIND TARGET [QUERY [EXPECT...]]: KIND and TARGET as for record
# ("rel" compares with scenario b); QUERY is a permission query sent with every verification ("" for
# none); each EXPECT is a string the first verification's response must contain besides
# "valid":true. Sets VS_OK=1 when the scenario ran.
verify_scenario() {
    local name="$1" create_body="$2" kind="$3" target="$4" query="${5:-}" key body verify_body tgt expect
    shift 4; (( $# > 0 )) && shift
    VS_OK=0
    log "$name"
    tgt=">= ${target}x"
    if [[ "$kind" == rel ]]; then
        tgt=">= ${target}x of b"
        if [[ -z "$B_RPS" ]]; then
            failed "$name" "$tgt" "scenario b did not run, nothing to compare with"
            return 0
        fi
    fi
    body="$(post keys.createKey "$create_body")"
    if [[ "$(status)" != 200 ]]; then
        failed "$name" "$tgt" "keys.createKey answered HTTP $(status): $body"
        return 0
    fi
    key="$(json_field data.key <<<"$body")"
    verify_body="{\"key\":\"$key\"${query:+,\"permissions\":\"$query\"}}"
    [[ -z "$query" ]] || echo "permission query ($(grep -oE '[A-Za-z0-9._*:/-]+' <<<"$query" | grep -cvxiE 'and|or') terms): $query"
    body="$(post keys.verifyKey "$verify_body")"
    echo "first verification: HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *'"valid":true'* ]]; then
        failed "$name" "$tgt" "keys.verifyKey answered HTTP $(status): $body"
        return 0
    fi
    for expect in "$@"; do
        if [[ "$body" != *"$expect"* ]]; then
            failed "$name" "$tgt" "the first verification's response lacks $expect: $body"
            return 0
        fi
    done
    settle
    local events; events="$(count_events)"
    BENCH_VERIFY_KEY="$key" BENCH_VERIFY_QUERY="$query" run_ratio "${name%%.*}" verify_one.lua "$BASE/v2/keys.verifyKey"
    VERIFIED=$((VERIFIED + R_REQUESTS))
    events_since "$events" "$R_REQUESTS"
    echo "last verification: $(post keys.verifyKey "$verify_body")"
    record "$name" "$kind" "$target" "$B_RPS" b
    VS_OK=1
}
B_RPS=""
verify_scenario "b. verify cached key" '{"apiId":"'"$API_ID"'"}' ratio 0.75
[[ "$VS_OK" == 1 ]] && B_RPS="$R_RPS"
verify_scenario "c. verify cached key, credits" '{"apiId":"'"$API_ID"'","credits":{"remaining":1000000000}}' ratio 0.6

# f: a key with credits and an auto-applied rate limit; the verify response must list the limit.
verify_scenario "f. verify, credits + rate limit" \
    '{"apiId":"'"$API_ID"'","credits":{"remaining":1000000000},"ratelimits":[{"name":"requests","limit":1000000000,"duration":60000,"autoApply":true}]}' \
    ratio 0.6 "" '"ratelimits":[' '"name":"requests"' '"credits":'

# g: 5 roles of 10 permissions each (50 slugs perm.r<i>.p<j>), a key holding the 5 roles, and a
# satisfied 10-term permission query.
log "g. permissions: creating 5 roles of 10 permissions"
roles_ok=1
for r in 0 1 2 3 4; do
    perms="$(printf '"perm.r'"$r"'.p%d",' 0 1 2 3 4 5 6 7 8 9)"
    perms="${perms%,}"
    body="$(post permissions.createRole "{\"name\":\"role_$r\",\"permissions\":[$perms]}")"
    if [[ "$(status)" != 200 ]]; then
        failed "g. verify, 10-term permission query" ">= 0.75x of b" "permissions.createRole role_$r answered HTTP $(status): $body"
        roles_ok=0
        break
    fi
    echo "role_$r: $body"
done
if (( roles_ok )); then
    verify_scenario "g. verify, 10-term permission query" \
        '{"apiId":"'"$API_ID"'","roles":["role_0","role_1","role_2","role_3","role_4"]}' \
        rel 0.75 \
        'perm.r0.p0 AND perm.r1.p1 AND (perm.r2.p2 OR nope.x) AND perm.r3.p3 AND (perm.r4.p4 OR nope.y) AND perm.r0.p9 AND perm.r4.p9 AND perm.r2.p5' \
        '"code":"VALID"'
fi

log "d. keys.createKey"
body="$(post keys.createKey "{\"apiId\":\"$API_ID\"}")"
if [[ "$(status)" != 200 ]]; then
    failed "d. createKey" ">= 2000/s" "keys.createKey answered HTTP $(status): $body"
else
    run_wrk createKey create_key.lua "$BASE/v2/keys.createKey"
    record "d. createKey (keys/s)" rps 2000
fi

# h, i: standalone rate limiting in namespace "bench" (created by the first call), with a limit
# that is never reached.
export BENCH_NAMESPACE=bench BENCH_RL_LIMIT=1000000000 BENCH_RL_DURATION=60000
rl_body() { # rl_body IDENTIFIER [DURATION]
    echo "{\"namespace\":\"$BENCH_NAMESPACE\",\"identifier\":\"$1\",\"limit\":$BENCH_RL_LIMIT,\"duration\":${2:-$BENCH_RL_DURATION}}"
}
# rl_check NAME TARGET IDENTIFIER [DURATION]: one ratelimit.limit call by hand; FAILED unless it
# answers 200 with "success":true.
rl_check() {
    local body; body="$(post ratelimit.limit "$(rl_body "$3" "${4:-}")")"
    echo "ratelimit.limit identifier $3: HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *'"success":true'* ]]; then
        failed "$1" "$2" "ratelimit.limit answered HTTP $(status): $body"
        return 1
    fi
}

log "h. ratelimit.limit, one hot identifier"
echo "creating namespace $BENCH_NAMESPACE with a first call"
if rl_check "h. ratelimit, hot identifier" ">= 0.8x" hot; then
    BENCH_BODY="$(rl_body hot)" run_ratio ratelimit-hot post_one.lua "$BASE/v2/ratelimit.limit"
    echo "last call: $(post ratelimit.limit "$(rl_body hot)")"
    record "h. ratelimit, hot identifier" ratio 0.8
fi

log "i. ratelimit.limit, $RL_ROTATE rotating identifiers"
if rl_check "i. ratelimit, $RL_ROTATE identifiers" ">= 0.8x" user_0; then
    BENCH_IDENTIFIERS="$RL_ROTATE" run_ratio ratelimit-rotating ratelimit_rotating.lua "$BASE/v2/ratelimit.limit"
    echo "last call: $(post ratelimit.limit "$(rl_body user_0)")"
    record "i. ratelimit, $RL_ROTATE identifiers" ratio 0.8
fi

# j: memory of rate-limit counters. A fresh server (so its VmHWM is its own), one call to warm
# the root key and the namespace, VmRSS when idle; then one pass over RL_MEMORY_IDS distinct
# identifiers with a 600 s window (the counters stay alive for the measurement), then VmRSS and
# VmHWM. No target: reported only.
RL_RSS_LINE=""
if (( RL_MEMORY_IDS > 0 )); then
    log "j. rate-limit memory: $RL_MEMORY_IDS distinct identifiers"
    stop_server
    start_server
    echo "restarted the server: pid $SERVER_PID"
    if rl_check "j. ratelimit memory, $RL_MEMORY_IDS ids" "report RSS" warm 600000; then
        wait_no_rustc
        settle
        sleep 1
        rl_rss0="$(rss_of "$SERVER_PID" VmRSS)"; rl_hwm0="$(rss_of "$SERVER_PID" VmHWM)"
        echo "idle server: VmRSS $rl_rss0 KiB, VmHWM $rl_hwm0 KiB"
        export BENCH_MARKER_DIR="$TMP/markers"
        rm -rf "$BENCH_MARKER_DIR" && mkdir -p "$BENCH_MARKER_DIR"
        mark="$(wc -l <"$TMP/server.log")"
        c0="$(cpu_ticks "$SERVER_PID")"; started=$SECONDS
        BENCH_IDENTIFIERS="$RL_MEMORY_IDS" BENCH_RL_DURATION=600000 \
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP_TIMEOUT}s" --timeout 10s --latency \
            -s "$BENCH_DIR/ratelimit_distinct.lua" "$BASE/v2/ratelimit.limit" >"$TMP/wrk-ratelimit-memory.out" 2>&1 &
        WRK_PID=$!
        end_wrk_when_marked distinct
        c1="$(cpu_ticks "$SERVER_PID")"
        parse_result "$TMP/wrk-ratelimit-memory.out"
        echo "one pass took $((SECONDS - started))s: $R_REQUESTS requests at $R_RPS req/s (p50 $(ms "$R_P50"), p99 $(ms "$R_P99")), server CPU $(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$R_REQUESTS" 'BEGIN { printf "%.1f", 1e6 * c / hz / n }') us/request"
        cat "$BENCH_MARKER_DIR"/distinct.* 2>/dev/null | sed 's/^/  wrk thread: /' || true
        rl_ok="$(cat "$BENCH_MARKER_DIR"/distinct.* 2>/dev/null | sed -n 's/.*success=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')"
        settle
        rl_rss1="$(rss_of "$SERVER_PID" VmRSS)"; rl_hwm1="$(rss_of "$SERVER_PID" VmHWM)"
        echo "after the pass: VmRSS $rl_rss1 KiB, VmHWM $rl_hwm1 KiB"
        echo "identifier 0 again (its counter should still hold 1): $(post ratelimit.limit "$(rl_body 0 600000)")"
        logged="$(tail -n +$((mark + 1)) "$TMP/server.log" | plain | grep -E ' (WARN|ERROR) ' || true)"
        R_LOGGED=""; R_NOISE=""
        [[ -z "$logged" ]] || R_LOGGED="server logged $(wc -l <<<"$logged") warnings, the last: $(tail -n 1 <<<"$logged" | cut -d' ' -f4-)"
        RL_RSS_LINE="$(awk -v r0="$rl_rss0" -v r1="$rl_rss1" -v h="$rl_hwm1" -v n="$RL_MEMORY_IDS" -v ok="$rl_ok" 'BEGIN {
            printf "rate-limit memory with %d distinct identifiers (%d answered success): idle VmRSS %.0f MiB -> VmRSS %.0f MiB, VmHWM %.0f MiB; growth %.0f MiB (peak %.0f MiB), %.0f bytes per identifier",
                   n, ok, r0 / 1024, r1 / 1024, h / 1024, (r1 - r0) / 1024, (h - r0) / 1024, (r1 - r0) * 1024 / n }')"
        echo "$RL_RSS_LINE"
        (( rl_ok >= RL_MEMORY_IDS )) || echo "bench: WARNING: only $rl_ok of $RL_MEMORY_IDS identifiers answered success (see above)" >&2
        R_NOTE="$(awk -v r0="$rl_rss0" -v r1="$rl_rss1" -v h="$rl_hwm1" 'BEGIN {
            printf "one pass, every request a new counter; RSS +%.0f MiB, VmHWM %.0f MiB (see the line below the table)", (r1 - r0) / 1024, h / 1024 }')"
        record "j. ratelimit memory, $RL_MEMORY_IDS ids" text "report RSS"
    fi
fi

RSS_LINE=""
if (( KEYS > 0 )); then
    log "e. $KEYS stored keys, uniformly random verification"
    echo "small server before restart: VmHWM $(rss_of "$SERVER_PID" VmHWM) KiB"
    stop_server
    export BENCH_KEYFILE="$TMP/keys.txt"
    python3 "$BENCH_DIR/load_keys.py" "$DB_PATH" "$API_ID" "$KEYS" "$BENCH_KEYFILE"
    echo "database: $(du -h "$DB_PATH" | cut -f1)"
    start_server
    echo "server pid $SERVER_PID, VmRSS after start $(rss_of "$SERVER_PID" VmRSS) KiB"

    first="$(head -n 1 "$BENCH_KEYFILE")"
    body="$(post keys.verifyKey "{\"key\":\"$first\"}")"
    echo "first verification: HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *'"valid":true'* ]]; then
        failed "e. verify random of $KEYS" ">= 0.5x" "keys.verifyKey of a loaded key answered HTTP $(status): $body"
    else
        echo "warm-up: verifying each of the $KEYS keys once..."
        export BENCH_MARKER_DIR="$TMP/markers"
        rm -rf "$BENCH_MARKER_DIR" && mkdir -p "$BENCH_MARKER_DIR"
        warm_started=$SECONDS
        events="$(count_events)"
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP_TIMEOUT}s" --timeout 10s \
            -s "$BENCH_DIR/verify_warmup.lua" "$BASE/v2/keys.verifyKey" >"$TMP/wrk-warmup.out" 2>&1 &
        WRK_PID=$!
        end_wrk_when_marked warm
        parse_result "$TMP/wrk-warmup.out"
        VERIFIED=$((VERIFIED + R_REQUESTS))
        echo "warm-up took $((SECONDS - warm_started))s, $R_REQUESTS requests at $R_RPS req/s (p50 $(ms "$R_P50"), p99 $(ms "$R_P99"))"
        cat "$BENCH_MARKER_DIR"/warm.* 2>/dev/null | sed 's/^/  warm-up thread: /' || true
        warm_valid="$(cat "$BENCH_MARKER_DIR"/warm.* 2>/dev/null | sed -n 's/.*valid=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')"
        echo "warm-up: $warm_valid of $KEYS keys answered valid; server VmRSS $(rss_of "$SERVER_PID" VmRSS) KiB"
        if (( warm_valid < KEYS )); then
            echo "bench: WARNING: not every key verified as valid during warm-up (see above)" >&2
        fi
        events_since "$events" "$R_REQUESTS"

        echo "uniformly random keys:"
        settle
        events="$(count_events)"
        run_ratio verify-random verify_random.lua "$BASE/v2/keys.verifyKey"
        VERIFIED=$((VERIFIED + R_REQUESTS))
        record "e. verify random of $KEYS" ratio 0.5
        hwm_kib="$(rss_of "$SERVER_PID" VmHWM)"
        rss_kib="$(rss_of "$SERVER_PID" VmRSS)"
        RSS_LINE="$(awk -v h="$hwm_kib" -v r="$rss_kib" -v n="$KEYS" 'BEGIN {
            printf "server peak RSS with %d keys (VmHWM): %.0f MiB (VmRSS now %.0f MiB); target < 1024 MiB: %s",
                   n, h / 1024, r / 1024, (h < 1024 * 1024) ? "yes" : "NO" }')"
        echo "$RSS_LINE"
        events_since "$events" "$R_REQUESTS"
    fi
fi

log "a'. GET /v2/liveness again (drift)"
run_wrk liveness-end liveness.lua "$BASE/v2/liveness"
record "liveness (end)" none ""

stop_server

CRASH_OUT=""
if [[ "$CRASH" == "1" ]]; then
    log "crash-credits.py: what a crash costs in credits"
    wait_no_rustc
    CRASH_OUT="$(python3 "$BENCH_DIR/crash-credits.py" --binary "$BIN" 2>&1)" || CRASH_OUT="$CRASH_OUT
(crash-credits.py exited with status $?)"
    echo "$CRASH_OUT"
fi

echo
problems="$(plain <"$TMP/server.log" | grep -E ' (WARN|ERROR) ' || true)"
if [[ -n "$problems" ]]; then
    echo "server log: $(wc -l <<<"$problems") warning/error lines, by message (the last of each shown):"
    # "<time>  WARN target: message field=value": group on level, target and message.
    awk '{ key = $2 " " $3; msg = $0; sub(/^[^ ]+ +[^ ]+ +[^ ]+ /, "", msg); m = msg; gsub(/ [a-z_]+=[^ ]*/, "", m)
           k = key " " m; n[k]++; last[k] = $0 } END { for (k in n) printf "  %6d x %s\n           last: %s\n", n[k], k, last[k] }' <<<"$problems"
else
    echo "server log: no warnings or errors"
fi
events="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM key_verifications").fetchone()[0])' "$DB_PATH" 2>&1)" || true
echo "verification events stored: $events key_verifications rows for about $VERIFIED verifications answered"

# ---- summary -------------------------------------------------------------------------------

if (( ROUNDS > 1 )); then
    log "summary (ratio targets: median of $ROUNDS rounds, each against a liveness run just before; other ratios against the first liveness run: $BASE_RPS req/s; duration $DURATION, $THREADS wrk thread(s), $CONNECTIONS connections)"
else
    log "summary (ratios against the first liveness run: $BASE_RPS req/s; duration $DURATION, $THREADS wrk thread(s), $CONNECTIONS connections)"
fi
{
    echo "scenario|req/s|p50|p99|ratio|target|met?"
    for row in "${RESULTS[@]}"; do
        IFS='|' read -r name rps p50 p99 ratio target met note <<<"$row"
        [[ "$p50" == "-" ]] || p50="$(ms "$p50")"
        [[ "$p99" == "-" ]] || p99="$(ms "$p99")"
        [[ "$rps" == "-" ]] || rps="$(printf '%.0f' "$rps")"
        echo "$name|$rps|$p50|$p99|$ratio|$target|$met"
    done
} | column -t -s '|' -o '  '
for row in "${RESULTS[@]}"; do
    IFS='|' read -r name _ _ _ _ _ _ note <<<"$row"
    [[ -z "$note" ]] || echo "note: $name: $note"
done
[[ -z "$RSS_LINE" ]] || echo "$RSS_LINE"
[[ -z "$RL_RSS_LINE" ]] || echo "$RL_RSS_LINE"
if [[ -n "$CRASH_OUT" ]]; then
    echo "crash-credits.py (BENCH_CRASH=1):"
    sed 's/^/  /' <<<"$CRASH_OUT"
fi

# ---- cluster scenarios (BENCH_CLUSTER=1) -----------------------------------------------------

# The same binary, on PostgreSQL and Redis: a single node against two in cluster mode. It prints
# its own summary; bench/cluster.sh runs them alone.
if [[ "${BENCH_CLUSTER:-0}" == "1" ]]; then
    log "BENCH_CLUSTER=1: the cluster scenarios (bench/cluster.sh)"
    BENCH_BIN="$BIN" "$BENCH_DIR/cluster.sh" || echo "bench: bench/cluster.sh exited with status $?" >&2
fi
