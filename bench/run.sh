#!/usr/bin/env bash
# keyward load benchmark: a release server on SQLite, driven by wrk on loopback, beside the bare
# server of bench/bare (the ceiling: keyward's HTTP stack, a JSON parser and a hash map, nothing
# else). Each scenario with a target runs BENCH_ROUNDS rounds of "ceiling, keyward's liveness,
# the scenario"; it prints requests/s, p50 and p99, the ratio to keyward's own GET /v2/liveness and
# the fraction of the ceiling (medians of the rounds), a summary against the targets, and the same
# as JSON (BENCH_JSON). Not a test; never run in CI.
# With BENCH_CLUSTER=1 it then runs bench/cluster.sh (PostgreSQL-only vs two nodes with Redis).
# See bench/README.md for the scenarios and the BENCH_* knobs.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${BENCH_BIN:-$TARGET_DIR/release/keyward}"
BARE_BIN="${BENCH_BARE_BIN:-$TARGET_DIR/release/keyward-bench-bare}"

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
ROUNDS="${BENCH_ROUNDS:-3}"
PACE_DELAY_MS="${BENCH_PACE_DELAY_MS:-1}"
JSON_OUT="${BENCH_JSON:-${TMPDIR:-/tmp}/keyward-bench-$(date +%Y%m%d-%H%M%S).json}"
if [[ "${BENCH_THROTTLECRAB:-}" == "0" ]]; then
    TC_BIN=""
else
    TC_BIN="${BENCH_THROTTLECRAB:-$(command -v throttlecrab-server || true)}"
fi
export BENCH_DIR BENCH_CONNECTIONS="$CONNECTIONS" BENCH_THREADS="$THREADS"

# log, die, bench_prerequisites, wait_no_rustc, json_field, plain, cpu_ticks, machine_ticks,
# end_wrk_when_marked, parse_result, ms
source "$BENCH_DIR/common.sh"

# ---- prerequisites -------------------------------------------------------------------------

bench_prerequisites

# The bare server is its own cargo package (bench/bare, its own workspace), built into the same
# target directory. BENCH_BARE_BIN names a prebuilt one; with BENCH_BIN or BENCH_BUILD=0 an
# existing build is used as it is and only a missing one is built (a minute or two, once).
build_bare() {
    log "building the bare server (bench/bare)"
    cargo build --release --manifest-path "$BENCH_DIR/bare/Cargo.toml" --target-dir "$TARGET_DIR" \
        || die "cargo build of bench/bare failed (BENCH_BARE_BIN=PATH runs a prebuilt bare server)"
}
if [[ -n "${BENCH_BIN:-}" || "${BENCH_BUILD:-1}" == "0" ]]; then
    [[ -x "$BIN" ]] || die "there is no executable $BIN (BENCH_BIN, or BENCH_BUILD=0 with the release build)"
    echo "bench: using the existing $BIN (built $(date -r "$BIN" '+%F %T'))"
    [[ -n "${BENCH_BARE_BIN:-}" || -x "$BARE_BIN" ]] || build_bare
else
    log "building the release binary"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed (BENCH_BUILD=0 runs the existing binary)"
    [[ -n "${BENCH_BARE_BIN:-}" ]] || build_bare
fi
[[ -x "$BARE_BIN" ]] || die "there is no executable $BARE_BIN (BENCH_BARE_BIN)"
echo "bench: bare server $BARE_BIN (built $(date -r "$BARE_BIN" '+%F %T'))"
if [[ -n "$TC_BIN" ]]; then
    [[ -x "$TC_BIN" ]] || die "there is no executable $TC_BIN (BENCH_THROTTLECRAB)"
    echo "bench: throttlecrab-server $TC_BIN, the ceiling of scenarios h and i"
else
    echo "bench: no throttlecrab-server (BENCH_THROTTLECRAB): h and i are compared with the bare server's liveness"
fi

wait_no_rustc

# ---- workspace, temp dir, server -----------------------------------------------------------

TMP="$(mktemp -d "${TMPDIR:-/tmp}/keyward-bench.XXXXXX")"
DB_PATH="$TMP/kw.db"
DB_URL="sqlite://$DB_PATH"
SERVER_PID=""
BARE_PID=""
TC_PID=""
WRK_PID=""

cleanup() {
    local status=$?
    if [[ -n "$WRK_PID" ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill "$WRK_PID" 2>/dev/null || true; fi
    stop_server
    stop_proc BARE_PID "the bare server"
    stop_proc TC_PID throttlecrab-server
    if [[ "$KEEP" == "1" ]]; then
        echo "bench: kept $TMP (database, key file, server log, wrk output)"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}

# stop_proc VAR WHAT: stops the process whose pid is in variable VAR (SIGTERM, then SIGKILL after
# 30 s) and empties VAR.
stop_proc() {
    local pid="${!1}"
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "bench: $2 ($pid) did not stop within 30s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    printf -v "$1" '%s' ""
}
stop_server() { stop_proc SERVER_PID "the server"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="${BENCH_PORT:-$(free_port)}"
BASE="http://127.0.0.1:$PORT"
BARE_PORT="$(free_port)"
while [[ "$BARE_PORT" == "$PORT" ]]; do BARE_PORT="$(free_port)"; done
BARE_BASE="http://127.0.0.1:$BARE_PORT"
BARE_HOT_KEY=bare_00000000000000000000000000000000 # the bare server's synthetic key number 0

WORKSPACE="$("$BIN" --database "$DB_URL" --log warn workspace create --name bench --json | json_field workspaceId)"
ROOT_KEY="$("$BIN" --database "$DB_URL" --log warn root-key create --workspace "$WORKSPACE" --name bench --json | json_field key)"
export BENCH_ROOT_KEY="$ROOT_KEY"

# start_proc VAR LOG URL WHAT COMMAND...: starts COMMAND in the background (output appended to
# LOG), puts its pid in variable VAR and waits (up to 60 s) until GET URL answers 2xx. Fails (with
# the end of LOG on stderr, the process stopped and VAR empty) when it does not.
start_proc() {
    local var="$1" logf="$2" url="$3" what="$4" pid
    shift 4
    "$@" >>"$logf" 2>&1 &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || true
            printf -v "$var" '%s' ""
            tail -n 40 "$logf" >&2
            echo "bench: $what exited during start-up (log above)" >&2
            return 1
        fi
        sleep 0.1
    done
    tail -n 40 "$logf" >&2
    echo "bench: $what: GET $url did not answer within 60s" >&2
    stop_proc "$var" "$what"
    return 1
}
start_server() {
    start_proc SERVER_PID "$TMP/server.log" "$BASE/v2/liveness" "the server" \
        "$BIN" --database "$DB_URL" --log warn serve --listen "127.0.0.1:$PORT" || die "the server did not start"
}
# start_bare [--keys FILE --fill N]: the bare server on BARE_PORT. Without a key file it holds
# 1000 synthetic keys (the hot key BARE_HOT_KEY among them).
start_bare() {
    (( $# > 0 )) || set -- --fill 1000
    start_proc BARE_PID "$TMP/bare.log" "$BARE_BASE/v2/liveness" "the bare server" \
        "$BARE_BIN" --listen "127.0.0.1:$BARE_PORT" "$@" || die "the bare server did not start"
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

# One entry per summary row: name|rps|p50_us|p99_us|vs_liveness|vs_ceiling|ceiling|target|met|note
RESULTS=()
R_NOTE=""
BASE_RPS=""
VERIFIED=0 # verifications answered during wrk runs, to compare with the events stored
# Everything the JSON file holds, as tab-separated lines (written by bench/results_json.py):
# "meta KEY VALUE", "knob KEY VALUE", "extra KEY VALUE", one "run ..." line per wrk run (run_wrk)
# and one "scenario ..." line per summary row (record, failed).
TSV="$TMP/results.tsv"
: >"$TSV"
tsv() { # tsv FIELD...: one line of TSV (tabs and newlines in a field become spaces)
    local fields=() f
    for f in "$@"; do f="${f//$'\t'/ }"; fields+=("${f//$'\n'/ }"); done
    local IFS=$'\t'
    printf '%s\n' "${fields[*]}" >>"$TSV"
}
CUR_ID="-"    # the scenario the next wrk runs belong to (for the JSON)
CUR_ROUND=0

# settle [MAX_SECONDS]: waits (up to BENCH_SETTLE seconds) until the server is idle.
server_ticks() { cpu_ticks "$SERVER_PID"; }
settle() { wait_idle "the server" "${1:-$SETTLE}" server_ticks; }

# run_wrk [--on bare|throttlecrab] [--role ROLE] [--quiet] [-c CONNECTIONS] [--env VAR=VALUE]...
#         NAME SCRIPT URL
# Runs one measured wrk run against keyward (or the bare server, or throttlecrab-server) and sets
# R_* from its result line; prints how much CPU that server, wrk and everything else on the machine
# used meanwhile. A run during which other processes used more than BENCH_NOISE percent of a core
# is marked noisy (R_NOISE). --env sets a variable for this wrk only; --quiet leaves out wrk's own
# output; ROLE (scenario, ceiling, liveness) goes to the JSON with the run's figures.
run_wrk() {
    local on=keyward role=scenario quiet=0 conns="$CONNECTIONS" envs=() pid logf
    while [[ "$1" == -* ]]; do
        case "$1" in
            --on) on="$2"; shift 2 ;;
            --role) role="$2"; shift 2 ;;
            --quiet) quiet=1; shift ;;
            -c) conns="$2"; shift 2 ;;
            --env) envs+=("$2"); shift 2 ;;
            *) die "run_wrk: unknown option $1" ;;
        esac
    done
    case "$on" in
        bare) pid="$BARE_PID"; logf="$TMP/bare.log" ;;
        throttlecrab) pid="$TC_PID"; logf="$TMP/throttlecrab.log" ;;
        *) pid="$SERVER_PID"; logf="$TMP/server.log" ;;
    esac
    local name="$1" script="$2" url="$3"
    local out="$TMP/wrk-$name.out" t0 t1 c0 c1 m0 m1 s0 s1 wu ws mark logged other server_us
    wait_no_rustc
    settle
    echo "wrk -t$THREADS -c$conns -d$DURATION --latency -s bench/$script $url${envs[*]:+ (${envs[*]})}"
    mark="$(wc -l <"$logf")"
    read -r m0 s0 <<<"$(machine_ticks)"
    c0="$(cpu_ticks "$pid")"; t0="$(date +%s.%N)"
    /usr/bin/time -f '%U %S' -o "$TMP/time-$name" env "${envs[@]}" \
        wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout 10s --latency \
        -s "$BENCH_DIR/$script" "$url" >"$out" 2>&1 || { cat "$out"; return 1; }
    c1="$(cpu_ticks "$pid")"; t1="$(date +%s.%N)"
    read -r m1 s1 <<<"$(machine_ticks)"
    (( quiet )) || grep -v '^BENCH_RESULT' "$out" | sed 's/^/  | /'
    parse_result "$out"
    (( quiet )) && printf '  %s: %s req/s, p50 %s, p99 %s\n' "$on $name" "$R_RPS" "$(ms "$R_P50")" "$(ms "$R_P99")"
    read -r wu ws <"$TMP/time-$name"
    awk -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v st=$((s1 - s0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        -v n="$R_REQUESTS" -v wu="$wu" -v ws="$ws" -v who="$on" 'BEGIN {
        secs = t1 - t0; server = c / hz; client = wu + ws; other = m / hz - server - client
        if (other < 0) other = 0
        if (n < 1) n = 1
        printf "  cpu: %s %.0f%% of a core (%.1f us/request), wrk %.0f%% (%.1f us/request), other processes %.0f%%, steal %.0f%%\n",
               who, 100 * server / secs, 1e6 * server / n, 100 * client / secs, 1e6 * client / n,
               100 * other / secs, 100 * st / hz / secs
        printf "%d %.1f\n", 100 * other / secs, 1e6 * server / n > "/dev/stderr" }' 2>"$TMP/other-$name"
    read -r other server_us <"$TMP/other-$name"
    R_NOISE=""
    if (( other > NOISE )); then
        R_NOISE="other processes used $other% of a core during the $on run: noisy"
        echo "  WARNING: $R_NOISE"
    fi
    # What the server logged (keyward at --log warn) during the run.
    logged="$(tail -n +$((mark + 1)) "$logf" | plain | grep -E ' (WARN|ERROR) ' || true)"
    R_LOGGED=""
    if [[ -n "$logged" ]]; then
        R_LOGGED="$on logged $(wc -l <<<"$logged") warnings, the last: $(tail -n 1 <<<"$logged" | cut -d' ' -f4-)"
        echo "  $R_LOGGED"
    fi
    tsv run "$CUR_ID" "$CUR_ROUND" "$role" "$on" "$name" "$R_RPS" "$R_P50" "$R_P99" "$R_REQUESTS" \
        "$R_NON2XX" "$R_SOCKERR" "$conns" "$server_us" "$other"
}

# The ceilings: the same kind of request, answered by the bare server (or throttlecrab-server).
declare -A CEILING_LABEL=(
    [bare-liveness]="bare liveness" [bare-verify]="bare verify" [bare-random]="bare verify random"
    [tc-hot]="throttlecrab hot" [tc-rotating]="throttlecrab rotating" [none]="-"
)
# run_ceiling CEILING NAME: one ceiling run (quiet), R_* as run_wrk sets them.
run_ceiling() {
    local c=(--role ceiling --quiet)
    case "$1" in
        bare-liveness) run_wrk --on bare "${c[@]}" "$2" liveness.lua "$BARE_BASE/v2/liveness" ;;
        bare-verify) run_wrk --on bare "${c[@]}" --env BENCH_VERIFY_KEY="$BARE_HOT_KEY" --env BENCH_VERIFY_QUERY= \
            "$2" verify_one.lua "$BARE_BASE/v2/keys.verifyKey" ;;
        bare-random) run_wrk --on bare "${c[@]}" "$2" verify_random.lua "$BARE_BASE/v2/keys.verifyKey" ;;
        tc-hot) run_wrk --on throttlecrab "${c[@]}" --env BENCH_BODY="$(tc_body hot)" \
            "$2" post_one.lua "$TC_BASE/throttle" ;;
        tc-rotating) run_wrk --on throttlecrab "${c[@]}" --env BENCH_RL_STYLE=throttlecrab --env BENCH_IDENTIFIERS="$RL_ROTATE" \
            "$2" ratelimit_rotating.lua "$TC_BASE/throttle" ;;
        *) die "run_ceiling: unknown ceiling $1" ;;
    esac
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
quot() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else print "-" }'; }

# measure [--rounds N] [--no-liveness] [--pace RATE] [-c CONNECTIONS] [--env VAR=VALUE]...
#         ID CEILING SCRIPT URL
# Measures keyward's scenario ID (SCRIPT against URL) in N rounds (BENCH_ROUNDS): each round runs
# the CEILING (a key of CEILING_LABEL, or none), then keyward's own GET /v2/liveness (unless
# --no-liveness, or when SCRIPT is the liveness itself), then the scenario, so the runs compared
# with each other are seconds apart. R_RPS, R_P50 and R_P99 become the medians of the scenario's
# runs (the lower middle one for an even N), R_REQUESTS, R_NON2XX and R_SOCKERR their sums;
# M_VS_CEIL and M_VS_LIVE are the medians of the per-round ratios (M_VS_CEILS, M_VS_LIVES list them;
# without a liveness run of its own the ratio is to BASE_RPS), M_P99_VS_CEIL the median of the
# per-round ratios of p99 to the ceiling's p99, M_CEIL_* the ceiling's median figures. --pace RATE
# drives the scenario with verify_paced.lua's delay(): the connections start at
# RATE x (BENCH_PACE_DELAY_MS + 0.2 ms) and are scaled after each round by RATE / the rate achieved.
clear_measure() {
    M_CEIL=none; M_CEIL_RPS=""; M_CEIL_P50=""; M_CEIL_P99=""; M_VS_CEIL=""; M_VS_CEILS=""
    M_VS_LIVE=""; M_VS_LIVES=""; M_P99_VS_CEIL=""; M_P99_VS_CEILS=""; M_ROUNDS=1; M_CONNS=""; M_NOTES=""
}
clear_measure
measure() {
    local rounds="$ROUNDS" live=1 pace="" conns="$CONNECTIONS" envs=()
    while [[ "$1" == -* ]]; do
        case "$1" in
            --rounds) rounds="$2"; shift 2 ;;
            --no-liveness) live=0; shift ;;
            --pace) pace="$2"; shift 2 ;;
            -c) conns="$2"; shift 2 ;;
            --env) envs+=(--env "$2"); shift 2 ;;
            *) die "measure: unknown option $1" ;;
        esac
    done
    local id="$1" ceil="$2" script="$3" url="$4" round
    local rps=() p50=() p99=() c_rps=() c_p50=() c_p99=() vs_c=() vs_l=() p99_c=() requests=0 non2xx=0 sockerr=0
    local noise="" logged="" live_rps
    [[ "$script" == liveness.lua ]] && live=0
    if [[ -n "$pace" ]]; then
        conns="$(awk -v r="$pace" -v d="$PACE_DELAY_MS" -v t="$THREADS" 'BEGIN { c = int(r * (d + 0.2) / 1000 + 0.5); print (c < t) ? t : c }')"
    fi
    clear_measure
    M_CEIL="$ceil"; M_ROUNDS="$rounds"
    CUR_ID="$id"
    for (( round = 1; round <= rounds; round++ )); do
        CUR_ROUND="$round"
        (( rounds > 1 )) && echo "round $round of $rounds: $([[ "$ceil" != none ]] && echo "${CEILING_LABEL[$ceil]}, ")$( (( live )) && echo "keyward liveness, ")$id"
        if [[ "$ceil" != none ]]; then
            run_ceiling "$ceil" "$id-$round-ceiling" || return 1
            c_rps+=("$R_RPS"); c_p50+=("$R_P50"); c_p99+=("$R_P99")
            [[ -z "$R_NOISE" ]] || noise="$R_NOISE"
            (( R_NON2XX + R_SOCKERR == 0 )) || M_NOTES="${M_NOTES:+$M_NOTES; }the ceiling run of round $round had $R_NON2XX non-2xx and $R_SOCKERR socket errors"
        fi
        live_rps="$BASE_RPS"
        if (( live )); then
            run_wrk --role liveness --quiet "$id-$round-liveness" liveness.lua "$BASE/v2/liveness" || return 1
            live_rps="$R_RPS"
            [[ -z "$R_NOISE" ]] || noise="$R_NOISE"
        fi
        if [[ -n "$pace" ]]; then
            run_wrk -c "$conns" "${envs[@]}" --env BENCH_DELAY_MS="$PACE_DELAY_MS" "$id-$round" "$script" "$url" || return 1
            M_CONNS="$conns"
            conns="$(awk -v c="$conns" -v want="$pace" -v got="$R_RPS" -v t="$THREADS" 'BEGIN {
                n = (got > 0) ? int(c * want / got + 0.5) : c; if (n > 4 * c) n = 4 * c; print (n < t) ? t : n }')"
        else
            run_wrk -c "$conns" "${envs[@]}" "$id-$round" "$script" "$url" || return 1
        fi
        rps+=("$R_RPS"); p50+=("$R_P50"); p99+=("$R_P99")
        requests=$((requests + R_REQUESTS)); non2xx=$((non2xx + R_NON2XX)); sockerr=$((sockerr + R_SOCKERR))
        [[ -z "$R_NOISE" ]] || noise="$R_NOISE"
        [[ -z "$R_LOGGED" ]] || logged="$R_LOGGED"
        [[ -z "$live_rps" ]] || vs_l+=("$(quot "$R_RPS" "$live_rps")")
        if [[ "$ceil" != none ]]; then
            vs_c+=("$(quot "$R_RPS" "${c_rps[-1]}")")
            p99_c+=("$(quot "$R_P99" "${c_p99[-1]}")")
        fi
    done
    R_RPS="$(median "${rps[@]}")"; R_P50="$(median "${p50[@]}")"; R_P99="$(median "${p99[@]}")"
    R_REQUESTS="$requests"; R_NON2XX="$non2xx"; R_SOCKERR="$sockerr"; R_NOISE="$noise"; R_LOGGED="$logged"
    if (( ${#vs_l[@]} > 0 )); then
        M_VS_LIVE="$(printf '%.2f' "$(median "${vs_l[@]}")")"; M_VS_LIVES="${vs_l[*]}"
    fi
    if [[ "$ceil" != none ]]; then
        M_CEIL_RPS="$(median "${c_rps[@]}")"; M_CEIL_P50="$(median "${c_p50[@]}")"; M_CEIL_P99="$(median "${c_p99[@]}")"
        M_VS_CEIL="$(printf '%.2f' "$(median "${vs_c[@]}")")"; M_VS_CEILS="${vs_c[*]}"
        M_P99_VS_CEIL="$(printf '%.2f' "$(median "${p99_c[@]}")")"; M_P99_VS_CEILS="${p99_c[*]}"
    fi
    if (( rounds > 1 )); then
        echo "  rounds: $id ${rps[*]} req/s (median $R_RPS)${M_VS_CEILS:+; vs ${CEILING_LABEL[$ceil]} ${M_VS_CEILS// /, } (median $M_VS_CEIL)}${M_VS_LIVES:+; vs liveness ${M_VS_LIVES// /, } (median $M_VS_LIVE)}"
    fi
}

ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a != "-" && a + 0 >= b + 0) ? "yes" : "NO" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a != "-" && a + 0 <= b + 0) ? "yes" : "NO" }'; }

# record ID NAME KIND TARGET: one summary row from R_* and M_* (measure's figures). KIND:
# "ceil" (TARGET is a minimum fraction of the ceiling's rate), "rps" (a minimum requests/s),
# "p99ceil" (p99 at most TARGET times the ceiling's p99), "p99ms" (p99 at most TARGET ms), "text"
# (TARGET is shown as is, nothing is met), "rssmib" (R_VALUE, a VmHWM in KiB, at most TARGET MiB)
# or "none". R_NOTE, when set, starts the row's note, and R_MET_NOTE is added to its met? column
# (both are cleared); M_NOTES is added to the note.
record() {
    local id="$1" name="$2" kind="$3" target="$4" tgt="-" met="-" note="${R_NOTE:-}" met_note="${R_MET_NOTE:-}"
    local vs_live="${M_VS_LIVE:--}" vs_ceil="${M_VS_CEIL:--}" ceiling="-"
    R_NOTE=""; R_MET_NOTE=""
    if [[ "$vs_live" == "-" && -n "$BASE_RPS" && "${R_RPS:--}" != "-" ]]; then
        vs_live="$(printf '%.2f' "$(quot "$R_RPS" "$BASE_RPS")")"
    fi
    [[ "$M_CEIL" == none ]] || ceiling="${CEILING_LABEL[$M_CEIL]} $(printf '%.0f' "$M_CEIL_RPS")/s"
    note="${note:+$note; }${M_NOTES}"; note="${note%; }"
    case "$kind" in
        ceil)
            tgt=">= ${target}x ceiling"
            met="$(ge "$vs_ceil" "$target")" ;;
        rps)
            tgt=">= $target/s"
            met="$(ge "$R_RPS" "$target")" ;;
        p99ceil)
            tgt="p99 <= ${target}x ceiling p99"
            vs_ceil="$M_P99_VS_CEIL (p99)"
            met="$(le "$M_P99_VS_CEIL" "$target")"
            note="${note:+$note; }p99 $(ms "$R_P99") against the ceiling's $(ms "$M_CEIL_P99")"
            (( M_ROUNDS <= 1 )) || note="$note (median of the per-round ratios ${M_P99_VS_CEILS// /, })" ;;
        p99ms)
            tgt="p99 <= $target ms"
            met="$(le "$R_P99" "$(awk -v t="$target" 'BEGIN { print t * 1000 }')")" ;;
        rssmib)
            tgt="VmHWM <= $target MiB"
            met="$(le "$(awk -v k="$R_VALUE" 'BEGIN { print k / 1024 }')" "$target") ($(awk -v k="$R_VALUE" 'BEGIN { printf "%.0f MiB", k / 1024 }'))" ;;
        text)
            tgt="$target" ;;
    esac
    [[ -z "$met_note" ]] || met="$met $met_note"
    if [[ "$kind" != p99ceil && "$M_ROUNDS" -gt 1 ]]; then
        local per=""
        [[ -z "$M_VS_CEILS" ]] || per="vs ceiling ${M_VS_CEILS// /, }"
        [[ -z "$M_VS_LIVES" ]] || per="${per:+$per; }vs liveness ${M_VS_LIVES// /, }"
        note="${note:+$note; }median of $M_ROUNDS rounds${per:+ ($per)}"
    fi
    if (( R_NON2XX > 0 || R_SOCKERR > 0 )); then
        note="${note:+$note; }$R_NON2XX non-2xx, $R_SOCKERR socket errors of $R_REQUESTS"
        [[ "$met" == yes* ]] && met="NO (errors)"
    fi
    [[ -z "$R_LOGGED" ]] || note="${note:+$note; }$R_LOGGED"
    if [[ -n "$R_NOISE" ]]; then
        note="${note:+$note; }$R_NOISE"
        met="$met (noisy)"
    fi
    RESULTS+=("$name|$R_RPS|$R_P50|$R_P99|$vs_live|$vs_ceil|$ceiling|$tgt|$met|$note")
    tsv scenario "$id" "$name" "$R_RPS" "$R_P50" "$R_P99" "$vs_live" "${M_VS_CEIL:--}" "${CEILING_LABEL[$M_CEIL]}" \
        "${M_CEIL_RPS:--}" "${M_CEIL_P50:--}" "${M_CEIL_P99:--}" "${M_P99_VS_CEIL:--}" "$kind" "$target" "$tgt" "$met" \
        "$M_ROUNDS" "$R_REQUESTS" "$R_NON2XX" "$R_SOCKERR" "$note"
    if [[ "$R_RPS" == "-" ]]; then
        printf '  => %s: %s%s\n' "$name" "$met" "${note:+ ($note)}"
    else
        printf '  => %s: %s req/s, p50 %s, p99 %s, vs liveness %s, vs ceiling %s: %s%s\n' "$name" "$R_RPS" \
            "$(ms "$R_P50")" "$(ms "$R_P99")" "$vs_live" "$vs_ceil" "$met" "${note:+ ($note)}"
    fi
}

failed() { # failed ID NAME TARGET REASON
    RESULTS+=("$2|-|-|-|-|-|-|$3|FAILED|$4")
    tsv scenario "$1" "$2" - - - - - - - - - - failed - "$3" FAILED 0 0 0 0 "$4"
    printf '  => %s: FAILED: %s\n' "$2" "$4"
}

# ---- run -----------------------------------------------------------------------------------

REVISION="$(cd "$REPO" && git rev-parse HEAD 2>/dev/null || echo '?')$(cd "$REPO" && git diff --quiet 2>/dev/null || echo '+dirty')"
CPU_MODEL="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
log "keyward bench: ${REVISION:0:12}, $(nproc) cores ($CPU_MODEL), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "database $DB_PATH ($(df -T "$TMP" | awk 'NR == 2 { print $2 }')), port $PORT (bare server $BARE_PORT), duration $DURATION, threads $THREADS, connections $CONNECTIONS, keys $KEYS, rounds $ROUNDS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
tsv meta started "$(date -u +%FT%TZ)"
tsv meta revision "$REVISION"
tsv meta cores "$(nproc)"
tsv meta cpu_model "$CPU_MODEL"
tsv meta kernel "$(uname -r)"
tsv meta memory_kib "$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)"
tsv meta wrk "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
tsv meta tmp_fs "$(df -T "$TMP" | awk 'NR == 2 { print $2 }')"
tsv meta keyward_bin "$BIN"
tsv meta bare_bin "$BARE_BIN"
tsv meta throttlecrab_bin "${TC_BIN:--}"
tsv meta load_average "$(cut -d' ' -f1-3 /proc/loadavg)"
for knob in "DURATION=$DURATION" "CONNECTIONS=$CONNECTIONS" "THREADS=$THREADS" "KEYS=$KEYS" "ROUNDS=$ROUNDS" \
    "RL_ROTATE=$RL_ROTATE" "RL_MEMORY_IDS=$RL_MEMORY_IDS" "PACE_DELAY_MS=$PACE_DELAY_MS" "SETTLE=$SETTLE" \
    "NOISE=$NOISE" "IDLE_WAIT=$IDLE_WAIT" "WARMUP_TIMEOUT=$WARMUP_TIMEOUT" "CRASH=$CRASH" "PORT=$PORT" "JSON=$JSON_OUT" \
    "BUILD=${BENCH_BUILD:-1}" "BIN=${BENCH_BIN:-}" "BARE_BIN=${BENCH_BARE_BIN:-}" "THROTTLECRAB=${BENCH_THROTTLECRAB:-}" \
    "KEEP=$KEEP" "CLUSTER=${BENCH_CLUSTER:-0}"; do
    tsv knob "BENCH_${knob%%=*}" "${knob#*=}"
done

start_server
echo "server pid $SERVER_PID"
start_bare
echo "bare server pid $BARE_PID ($(head -n 1 "$TMP/bare.log"))"
body="$(curl -sS -X POST "$BARE_BASE/v2/keys.verifyKey" -d "{\"key\":\"$BARE_HOT_KEY\"}" -H 'Content-Type: application/json' || true)"
echo "bare server, verification of its hot key: $body"
[[ "$body" == *'"valid":true'* ]] || die "the bare server did not verify its hot key $BARE_HOT_KEY: $body"

API_ID="$(post apis.createApi '{"name":"bench"}' | json_field data.apiId)" \
    || die "apis.createApi failed: HTTP $(status): $(cat "$TMP/response")"
export BENCH_API_ID="$API_ID"
echo "workspace $WORKSPACE, api $API_ID"

log "a. GET /v2/liveness, against the bare server's"
measure a bare-liveness liveness.lua "$BASE/v2/liveness"
BASE_RPS="$R_RPS"
record a "a. liveness" ceil 0.95

# b, c, f, g: create the key, check one verification by hand, then drive it; the ceiling is the
# bare server's verification of its hot key.
# verify_scenario ID NAME CREATE_BODY KIND TARGET [QUERY [EXPECT...]]: KIND and TARGET as for
# record; QUERY is a permission query sent with every verification ("" for none); each EXPECT is a
# string the first verification's response must contain besides "valid":true. Sets VS_OK=1 when
# the scenario ran and VS_KEY to its key.
verify_scenario() {
    local id="$1" name="$2" create_body="$3" kind="$4" target="$5" query="${6:-}" key body verify_body tgt expect
    shift 5; (( $# > 0 )) && shift
    VS_OK=0
    log "$name"
    tgt=">= ${target}x ceiling"
    [[ "$kind" == ceil ]] || tgt="-"
    body="$(post keys.createKey "$create_body")"
    if [[ "$(status)" != 200 ]]; then
        failed "$id" "$name" "$tgt" "keys.createKey answered HTTP $(status): $body"
        return 0
    fi
    key="$(json_field data.key <<<"$body")"
    verify_body="{\"key\":\"$key\"${query:+,\"permissions\":\"$query\"}}"
    [[ -z "$query" ]] || echo "permission query ($(grep -oE '[A-Za-z0-9._*:/-]+' <<<"$query" | grep -cvxiE 'and|or') terms): $query"
    body="$(post keys.verifyKey "$verify_body")"
    echo "first verification: HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *'"valid":true'* ]]; then
        failed "$id" "$name" "$tgt" "keys.verifyKey answered HTTP $(status): $body"
        return 0
    fi
    for expect in "$@"; do
        if [[ "$body" != *"$expect"* ]]; then
            failed "$id" "$name" "$tgt" "the first verification's response lacks $expect: $body"
            return 0
        fi
    done
    settle
    local events; events="$(count_events)"
    measure --env BENCH_VERIFY_KEY="$key" --env BENCH_VERIFY_QUERY="$query" \
        "$id" bare-verify verify_one.lua "$BASE/v2/keys.verifyKey"
    VERIFIED=$((VERIFIED + R_REQUESTS))
    events_since "$events" "$R_REQUESTS"
    echo "last verification: $(post keys.verifyKey "$verify_body")"
    record "$id" "$name" "$kind" "$target"
    VS_OK=1
    VS_KEY="$key"
}
verify_scenario b "b. verify cached key" '{"apiId":"'"$API_ID"'"}' ceil 0.9
if [[ "$VS_OK" == 1 ]]; then
    B_RPS="$R_RPS"
    B_KEY="$VS_KEY"
    # b's p99 against the bare server's, from the same runs.
    record b-p99 "b'. verify p99 at saturation" p99ceil 1.5

    # b at half of its peak: wrk has no rate option, so each connection waits
    # BENCH_PACE_DELAY_MS after every response (verify_paced.lua's delay()); the connections are
    # chosen for half of b's rate and corrected after each round by the rate achieved.
    half="$(awk -v r="$B_RPS" 'BEGIN { printf "%.0f", r / 2 }')"
    log "b/2. verify cached key at half of b's rate ($half req/s)"
    events="$(count_events)"
    measure --no-liveness --pace "$half" --env BENCH_VERIFY_KEY="$B_KEY" --env BENCH_VERIFY_QUERY= \
        b-half none verify_paced.lua "$BASE/v2/keys.verifyKey"
    VERIFIED=$((VERIFIED + R_REQUESTS))
    events_since "$events" "$R_REQUESTS"
    R_NOTE="wrk with delay(): $M_CONNS connections (last round) each waiting ${PACE_DELAY_MS} ms after every response; asked for $half req/s (half of b's $(printf '%.0f' "$B_RPS")), got $(printf '%.0f' "$R_RPS"); latencies not corrected for coordinated omission"
    # Its p99 says little when the paced run fell well short of half of b's rate: met? says so.
    [[ "$(ge "$R_RPS" "$(awk -v h="$half" 'BEGIN { print 0.8 * h }')")" == yes ]] || R_MET_NOTE="(rate short)"
    record b-half "b/2. verify at half of b's rate" p99ms 1
fi
verify_scenario c "c. verify cached key, credits" '{"apiId":"'"$API_ID"'","credits":{"remaining":1000000000}}' none ""

# f: a key with credits and an auto-applied rate limit; the verify response must list the limit.
verify_scenario f "f. verify, credits + rate limit" \
    '{"apiId":"'"$API_ID"'","credits":{"remaining":1000000000},"ratelimits":[{"name":"requests","limit":1000000000,"duration":60000,"autoApply":true}]}' \
    ceil 0.8 "" '"ratelimits":[' '"name":"requests"' '"credits":'

# g: 5 roles of 10 permissions each (50 slugs perm.r<i>.p<j>), a key holding the 5 roles, and a
# satisfied 10-term permission query.
log "g. permissions: creating 5 roles of 10 permissions"
roles_ok=1
for r in 0 1 2 3 4; do
    perms="$(printf '"perm.r'"$r"'.p%d",' 0 1 2 3 4 5 6 7 8 9)"
    perms="${perms%,}"
    body="$(post permissions.createRole "{\"name\":\"role_$r\",\"permissions\":[$perms]}")"
    if [[ "$(status)" != 200 ]]; then
        failed g "g. verify, 10-term permission query" ">= 0.85x ceiling" "permissions.createRole role_$r answered HTTP $(status): $body"
        roles_ok=0
        break
    fi
    echo "role_$r: $body"
done
if (( roles_ok )); then
    verify_scenario g "g. verify, 10-term permission query" \
        '{"apiId":"'"$API_ID"'","roles":["role_0","role_1","role_2","role_3","role_4"]}' \
        ceil 0.85 \
        'perm.r0.p0 AND perm.r1.p1 AND (perm.r2.p2 OR nope.x) AND perm.r3.p3 AND (perm.r4.p4 OR nope.y) AND perm.r0.p9 AND perm.r4.p9 AND perm.r2.p5' \
        '"code":"VALID"'
fi

log "d. keys.createKey"
body="$(post keys.createKey "{\"apiId\":\"$API_ID\"}")"
if [[ "$(status)" != 200 ]]; then
    failed d "d. createKey (keys/s)" ">= 4000/s" "keys.createKey answered HTTP $(status): $body"
else
    measure --no-liveness d none create_key.lua "$BASE/v2/keys.createKey"
    record d "d. createKey (keys/s)" rps 4000
fi

# h, i: standalone rate limiting in namespace "bench" (created by the first call), with a limit
# that is never reached. The ceiling is throttlecrab-server when it is installed (the same
# identifiers, as keys of its POST /throttle, with the same limit and window), else the bare
# server's liveness.
export BENCH_NAMESPACE=bench BENCH_RL_LIMIT=1000000000 BENCH_RL_DURATION=60000
rl_body() { # rl_body IDENTIFIER [DURATION]
    echo "{\"namespace\":\"$BENCH_NAMESPACE\",\"identifier\":\"$1\",\"limit\":$BENCH_RL_LIMIT,\"duration\":${2:-$BENCH_RL_DURATION}}"
}
tc_body() { # tc_body KEY: throttlecrab-server's request for the same limit and window
    echo "{\"key\":\"$1\",\"max_burst\":$BENCH_RL_LIMIT,\"count_per_period\":$BENCH_RL_LIMIT,\"period\":$((BENCH_RL_DURATION / 1000))}"
}
# rl_check ID NAME TARGET IDENTIFIER [DURATION]: one ratelimit.limit call by hand; FAILED unless
# it answers 200 with "success":true.
rl_check() {
    local body; body="$(post ratelimit.limit "$(rl_body "$4" "${5:-}")")"
    echo "ratelimit.limit identifier $4: HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *'"success":true'* ]]; then
        failed "$1" "$2" "$3" "ratelimit.limit answered HTTP $(status): $body"
        return 1
    fi
}

RL_HOT_CEIL=bare-liveness RL_ROT_CEIL=bare-liveness RL_TARGET=0.8
if [[ -n "$TC_BIN" ]]; then
    log "starting throttlecrab-server, the ceiling of h and i"
    TC_PORT="$(free_port)"
    TC_BASE="http://127.0.0.1:$TC_PORT"
    body=""
    if start_proc TC_PID "$TMP/throttlecrab.log" "$TC_BASE/health" throttlecrab-server \
        "$TC_BIN" --http --http-host 127.0.0.1 --http-port "$TC_PORT"; then
        body="$(curl -sS -X POST "$TC_BASE/throttle" -H 'Content-Type: application/json' -d "$(tc_body hot)" || true)"
        echo "throttlecrab-server pid $TC_PID, first call: $body"
    fi
    if [[ "$body" =~ \"allowed\":\ *true ]]; then
        RL_HOT_CEIL=tc-hot RL_ROT_CEIL=tc-rotating RL_TARGET=1.0
    else
        echo "bench: WARNING: throttlecrab-server did not answer as expected; h and i are compared with the bare server's liveness" >&2
        stop_proc TC_PID throttlecrab-server
    fi
fi

log "h. ratelimit.limit, one hot identifier"
echo "creating namespace $BENCH_NAMESPACE with a first call"
if rl_check h "h. ratelimit, hot identifier" ">= ${RL_TARGET}x ceiling" hot; then
    measure --env BENCH_BODY="$(rl_body hot)" h "$RL_HOT_CEIL" post_one.lua "$BASE/v2/ratelimit.limit"
    echo "last call: $(post ratelimit.limit "$(rl_body hot)")"
    record h "h. ratelimit, hot identifier" ceil "$RL_TARGET"
fi

log "i. ratelimit.limit, $RL_ROTATE rotating identifiers"
if rl_check i "i. ratelimit, $RL_ROTATE identifiers" ">= ${RL_TARGET}x ceiling" user_0; then
    measure --env BENCH_IDENTIFIERS="$RL_ROTATE" i "$RL_ROT_CEIL" ratelimit_rotating.lua "$BASE/v2/ratelimit.limit"
    echo "last call: $(post ratelimit.limit "$(rl_body user_0)")"
    record i "i. ratelimit, $RL_ROTATE identifiers" ceil "$RL_TARGET"
fi
stop_proc TC_PID throttlecrab-server

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
    if rl_check j "j. ratelimit memory, $RL_MEMORY_IDS ids" "report RSS" warm 600000; then
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
        tsv extra ratelimit_memory "$RL_RSS_LINE"
        tsv extra ratelimit_memory_idle_vmrss_kib "$rl_rss0"
        tsv extra ratelimit_memory_vmrss_kib "$rl_rss1"
        tsv extra ratelimit_memory_vmhwm_kib "$rl_hwm1"
        (( rl_ok >= RL_MEMORY_IDS )) || echo "bench: WARNING: only $rl_ok of $RL_MEMORY_IDS identifiers answered success (see above)" >&2
        R_NOTE="$(awk -v r0="$rl_rss0" -v r1="$rl_rss1" -v h="$rl_hwm1" 'BEGIN {
            printf "one pass, every request a new counter; RSS +%.0f MiB, VmHWM %.0f MiB (see the line below the table)", (r1 - r0) / 1024, h / 1024 }')"
        clear_measure
        record j "j. ratelimit memory, $RL_MEMORY_IDS ids" text "report RSS"
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
    # The bare server again, now holding the key file's keys (and its hot key), so the ceiling's
    # random keys are found as keyward's are.
    stop_proc BARE_PID "the bare server"
    start_bare --keys "$BENCH_KEYFILE" --fill $((KEYS + 1))
    echo "bare server pid $BARE_PID ($(tail -n 1 "$TMP/bare.log")), VmRSS $(rss_of "$BARE_PID" VmRSS) KiB"
    start_server
    echo "server pid $SERVER_PID, VmRSS after start $(rss_of "$SERVER_PID" VmRSS) KiB"

    first="$(head -n 1 "$BENCH_KEYFILE")"
    body="$(post keys.verifyKey "{\"key\":\"$first\"}")"
    echo "first verification: HTTP $(status) $body"
    bare_body="$(curl -sS -X POST "$BARE_BASE/v2/keys.verifyKey" -H 'Content-Type: application/json' -d "{\"key\":\"$first\"}" || true)"
    echo "bare server, first verification: $bare_body"
    if [[ "$(status)" != 200 || "$body" != *'"valid":true'* ]]; then
        failed e "e. verify random of $KEYS" ">= 0.85x ceiling" "keys.verifyKey of a loaded key answered HTTP $(status): $body"
    elif [[ "$bare_body" != *'"valid":true'* ]]; then
        failed e "e. verify random of $KEYS" ">= 0.85x ceiling" "the bare server did not find a loaded key: $bare_body"
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
        tsv extra warmup_seconds $((SECONDS - warm_started))
        tsv extra warmup_rps "$R_RPS"
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
        measure e bare-random verify_random.lua "$BASE/v2/keys.verifyKey"
        VERIFIED=$((VERIFIED + R_REQUESTS))
        record e "e. verify random of $KEYS" ceil 0.85
        hwm_kib="$(rss_of "$SERVER_PID" VmHWM)"
        rss_kib="$(rss_of "$SERVER_PID" VmRSS)"
        bare_hwm_kib="$(rss_of "$BARE_PID" VmHWM)"
        RSS_LINE="$(awk -v h="$hwm_kib" -v r="$rss_kib" -v b="$bare_hwm_kib" -v n="$KEYS" 'BEGIN {
            printf "server peak RSS with %d keys (VmHWM): %.0f MiB (VmRSS now %.0f MiB; the bare server with the same keys: VmHWM %.0f MiB); target <= 400 MiB: %s",
                   n, h / 1024, r / 1024, b / 1024, (h <= 400 * 1024) ? "yes" : "NO" }')"
        echo "$RSS_LINE"
        tsv extra peak_rss_line "$RSS_LINE"
        tsv extra keyward_vmhwm_kib "$hwm_kib"
        tsv extra keyward_vmrss_kib "$rss_kib"
        tsv extra bare_vmhwm_kib "$bare_hwm_kib"
        # The memory target as a row of its own (its figure is in the note).
        clear_measure
        R_RPS="-" R_P50="-" R_P99="-" R_NON2XX=0 R_SOCKERR=0 R_REQUESTS=0 R_NOISE="" R_LOGGED=""
        R_NOTE="$(awk -v h="$hwm_kib" -v b="$bare_hwm_kib" 'BEGIN { printf "VmHWM %.0f MiB after the random runs (bare server: %.0f MiB)", h / 1024, b / 1024 }')"
        R_VALUE="$hwm_kib"
        record e-rss "e. peak RSS, $KEYS keys" rssmib 400
        events_since "$events" "$R_REQUESTS"
    fi
fi

log "a'. GET /v2/liveness again (drift), against the bare server's"
measure --rounds 1 a-end bare-liveness liveness.lua "$BASE/v2/liveness"
record a-end "a'. liveness (end)" none ""

stop_server
stop_proc BARE_PID "the bare server"

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
tsv extra verification_events_stored "$events"
tsv extra verifications_answered "$VERIFIED"

# ---- summary -------------------------------------------------------------------------------

if (( ROUNDS > 1 )); then rounds_text="medians of $ROUNDS rounds"; else rounds_text="one round"; fi
log "summary ($rounds_text of ceiling, keyward liveness, scenario; d and b/2 against the liveness of a: $(printf '%.0f' "${BASE_RPS:-0}") req/s; duration $DURATION, $THREADS wrk thread(s), $CONNECTIONS connections)"
{
    echo "scenario|req/s|p50|p99|vs liveness|vs ceiling|ceiling|target|met?"
    for row in "${RESULTS[@]}"; do
        IFS='|' read -r name rps p50 p99 vs_live vs_ceil ceiling target met note <<<"$row"
        [[ "$p50" == "-" ]] || p50="$(ms "$p50")"
        [[ "$p99" == "-" ]] || p99="$(ms "$p99")"
        [[ "$rps" == "-" ]] || rps="$(printf '%.0f' "$rps")"
        echo "$name|$rps|$p50|$p99|$vs_live|$vs_ceil|$ceiling|$target|$met"
    done
} | column -t -s '|' -o '  '
for row in "${RESULTS[@]}"; do
    IFS='|' read -r name _ _ _ _ _ _ _ _ note <<<"$row"
    [[ -z "$note" ]] || echo "note: $name: $note"
done
[[ -z "$RSS_LINE" ]] || echo "$RSS_LINE"
[[ -z "$RL_RSS_LINE" ]] || echo "$RL_RSS_LINE"
if [[ -n "$CRASH_OUT" ]]; then
    echo "crash-credits.py (BENCH_CRASH=1):"
    sed 's/^/  /' <<<"$CRASH_OUT"
fi

# The same as JSON: the machine, the revision, the knobs, every row with each round's runs.
tsv meta finished "$(date -u +%FT%TZ)"
if python3 "$BENCH_DIR/results_json.py" "$TSV" "$JSON_OUT"; then
    echo "results as JSON: $JSON_OUT"
else
    echo "bench: WARNING: writing $JSON_OUT failed (the tab-separated results are in $TSV with BENCH_KEEP=1)" >&2
fi

# ---- cluster scenarios (BENCH_CLUSTER=1) -----------------------------------------------------

# The same binary, on PostgreSQL and Redis: a single node against two in cluster mode. It prints
# its own summary; bench/cluster.sh runs them alone.
if [[ "${BENCH_CLUSTER:-0}" == "1" ]]; then
    log "BENCH_CLUSTER=1: the cluster scenarios (bench/cluster.sh)"
    BENCH_BIN="$BIN" "$BENCH_DIR/cluster.sh" || echo "bench: bench/cluster.sh exited with status $?" >&2
fi
