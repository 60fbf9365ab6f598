#!/usr/bin/env bash
# keyward cluster benchmark: on one fresh PostgreSQL database, a single node without Redis
# ("PostgreSQL-only"), then two nodes in cluster mode (both `--redis` on the same database and
# Redis), driven by wrk on loopback in the same run. Prints requests/s, p50 and p99 of each
# scenario, the ratio of each cluster figure to the single node's, and PASS/FAIL against the
# cluster targets. Not a test; never run in CI. Run it alone or through `BENCH_CLUSTER=1
# bench/run.sh`; see bench/README.md ("Cluster scenarios") for the scenarios and the knobs.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BIN="${BENCH_BIN:-$REPO/target/release/keyward}"

DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-1}"
KEYS="${BENCH_CLUSTER_KEYS:-10000}"
ROUNDS="${BENCH_ROUNDS:-1}"
KEEP="${BENCH_KEEP:-0}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-600}"
SETTLE="${BENCH_SETTLE:-15}"
NOISE="${BENCH_NOISE:-15}"
WARMUP_TIMEOUT="${BENCH_WARMUP_TIMEOUT:-3600}"
PG_ADMIN="${BENCH_PG:-}"
REDIS_URL="${BENCH_REDIS:-redis://127.0.0.1:6379}"
export BENCH_DIR BENCH_CONNECTIONS="$CONNECTIONS" BENCH_THREADS="$THREADS"

# log, die, bench_prerequisites, wait_no_rustc, json_field, plain, cpu_ticks, machine_ticks,
# end_wrk_when_marked, parse_result, ms
source "$BENCH_DIR/common.sh"

# ---- prerequisites -------------------------------------------------------------------------

bench_prerequisites
command -v psql >/dev/null 2>&1 || die "psql is needed (it creates and drops the database)"
(( CONNECTIONS >= 2 )) || die "BENCH_CONNECTIONS must be at least 2 (the combined runs split them)"

if [[ -n "${BENCH_BIN:-}" || "${BENCH_BUILD:-1}" == "0" ]]; then
    [[ -x "$BIN" ]] || die "there is no executable $BIN (BENCH_BIN, or BENCH_BUILD=0 with the release build)"
    echo "bench: using the existing $BIN (built $(date -r "$BIN" '+%F %T'))"
else
    log "building the release binary"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed (BENCH_BIN=PATH runs another binary)"
fi

if [[ -z "$PG_ADMIN" ]]; then
    # Starts PostgreSQL and Redis when they are not running; prints the PostgreSQL admin URL.
    PG_ADMIN="$("$REPO/scripts/ensure-services.sh")" || die "scripts/ensure-services.sh failed"
fi
wait_no_rustc

# ---- database, temp dir, nodes -------------------------------------------------------------

TMP="$(mktemp -d "${TMPDIR:-/tmp}/keyward-cluster-bench.XXXXXX")"
RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
DB_NAME="kw_bench_$RUN_ID"
DB_URL="${PG_ADMIN%/*}/$DB_NAME"
DB_CREATED=0
WRK_PIDS=()
declare -A NODE_PID NODE_URL

cleanup() {
    local status=$? pid name
    for pid in "${WRK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for name in "${!NODE_PID[@]}"; do stop_node "$name"; done
    if [[ "$KEEP" == "1" ]]; then
        echo "bench: kept $TMP (node logs, key file, wrk output) and database $DB_URL"
    else
        if (( DB_CREATED )); then
            psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 \
                || echo "bench: could not drop database $DB_NAME" >&2
        fi
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_node NAME [REDIS_URL]: `keyward serve` on a free loopback port, logging to $TMP/NAME.log;
# waits until GET /ready answers 200 (and, with Redis, reports it up).
start_node() {
    local name="$1" redis="${2:-}" port i ready
    port="$(free_port)"
    "$BIN" --database "$DB_URL" --log warn serve --listen "127.0.0.1:$port" ${redis:+--redis "$redis"} \
        >>"$TMP/$name.log" 2>&1 &
    NODE_PID[$name]=$!
    NODE_URL[$name]="http://127.0.0.1:$port"
    for i in $(seq 1 600); do
        if ready="$(curl -fsS "${NODE_URL[$name]}/ready" 2>/dev/null)"; then
            if [[ -n "$redis" && "$ready" != *'"redis":"up"'* ]]; then
                die "node $name does not reach Redis at $redis: $ready"
            fi
            echo "node $name: pid ${NODE_PID[$name]}, ${NODE_URL[$name]}${redis:+, --redis $redis}: $ready"
            return 0
        fi
        if ! kill -0 "${NODE_PID[$name]}" 2>/dev/null; then
            wait "${NODE_PID[$name]}" || true
            unset "NODE_PID[$name]"
            tail -n 40 "$TMP/$name.log" >&2
            die "node $name exited during start-up (log above)"
        fi
        sleep 0.1
    done
    tail -n 40 "$TMP/$name.log" >&2
    die "node $name: GET /ready did not answer within 60s"
}

stop_node() {
    local name="$1" pid="${NODE_PID[$1]:-}" i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "bench: node $name ($pid) did not stop within 30s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    unset "NODE_PID[$name]"
}

node_pids() { echo "${NODE_PID[@]}"; }

# post NODE ROUTE BODY: prints the response body; the status goes to $TMP/status.
post() {
    curl -sS -o "$TMP/response" -w '%{http_code}' -X POST "${NODE_URL[$1]}/v2/$2" \
        -H "Authorization: Bearer $ROOT_KEY" -H "Content-Type: application/json" \
        -d "$3" >"$TMP/status" || echo 000 >"$TMP/status"
    cat "$TMP/response"
}
status() { cat "$TMP/status"; }

# The CPU of the running nodes together, in ticks.
nodes_ticks() {
    local pid sum=0
    for pid in $(node_pids); do sum=$((sum + $(cpu_ticks "$pid" 2>/dev/null || echo 0))); done
    echo "$sum"
}

# settle: waits (up to BENCH_SETTLE seconds) until the nodes together are idle.
settle() { wait_idle "the nodes" "$SETTLE" nodes_ticks; }

# "pid ticks" of every PostgreSQL and Redis process: the database and Redis work for the nodes, so
# their CPU is accounted apart from "other processes" (which marks a run noisy).
services_snapshot() {
    local pid
    for pid in $(pgrep -x postgres; pgrep -x redis-server); do
        echo "$pid $(cpu_ticks "$pid" 2>/dev/null || echo 0)"
    done
}
snapshot_delta() { # snapshot_delta BEFORE_FILE AFTER_FILE -> ticks used by processes in AFTER
    awk 'NR == FNR { t[$1] = $2; next } { d += $2 - (($1 in t) ? t[$1] : 0) } END { print d + 0 }' "$1" "$2"
}

# Machine-wide CPU in ticks: "processes irq steal" (processes = user nice system; irq = irq softirq).
# Loopback traffic to PostgreSQL and Redis is largely softirq time no process is billed for, so it
# is shown apart instead of counting as other processes.
machine_split() { awk '$1 == "cpu" { print $2 + $3 + $4, $7 + $8, $9 }' /proc/stat; }

warnings_count() { cat "$TMP"/*.log 2>/dev/null | plain | grep -cE ' (WARN|ERROR) ' || true; }

# run_wrk NAME SCRIPT URL [URL2]: one measured run; with URL2, two wrk processes at once (one per
# node, BENCH_CONNECTIONS/2 connections each): R_RPS is their sum, R_P50 and R_P99 the higher of
# the two. Prints the CPU of the nodes, of PostgreSQL and Redis, of wrk and of other processes, and
# sets R_NOISY when other processes used more than BENCH_NOISE percent of a core.
run_wrk() {
    local name="$1" script="$2" urls=("${@:3}") conns="$CONNECTIONS" i out t0 t1 c0 c1 m0 m1 q0 q1 s0 s1 w0 rest
    local rps=0 p50=0 p99=0 non2xx=0 sockerr=0 requests=0 wu ws wrk_secs=0
    (( ${#urls[@]} == 1 )) || conns=$((CONNECTIONS / 2))
    wait_no_rustc
    settle
    w0="$(warnings_count)"
    services_snapshot >"$TMP/svc0"
    read -r m0 q0 s0 <<<"$(machine_split)"
    c0="$(nodes_ticks)"; t0="$(date +%s.%N)"
    WRK_PIDS=()
    for i in "${!urls[@]}"; do
        echo "wrk -t$THREADS -c$conns -d$DURATION --latency -s bench/$script ${urls[$i]}"
        /usr/bin/time -f '%U %S' -o "$TMP/time-$name-$i" \
            wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout 10s --latency \
            -s "$BENCH_DIR/$script" "${urls[$i]}" >"$TMP/wrk-$name-$i.out" 2>&1 &
        WRK_PIDS+=($!)
    done
    for i in "${!WRK_PIDS[@]}"; do
        wait "${WRK_PIDS[$i]}" || { cat "$TMP/wrk-$name-$i.out"; WRK_PIDS=(); return 1; }
    done
    WRK_PIDS=()
    c1="$(nodes_ticks)"; t1="$(date +%s.%N)"
    read -r m1 q1 s1 <<<"$(machine_split)"
    services_snapshot >"$TMP/svc1"
    for i in "${!urls[@]}"; do
        out="$TMP/wrk-$name-$i.out"
        grep -v '^BENCH_RESULT' "$out" | sed 's/^/  | /'
        parse_result "$out"
        (( ${#urls[@]} == 1 )) || echo "  node $((i + 1)) of ${#urls[@]}: $R_RPS req/s, p50 $(ms "$R_P50"), p99 $(ms "$R_P99")"
        rps="$(awk -v a="$rps" -v b="$R_RPS" 'BEGIN { print a + b }')"
        (( R_P50 > p50 )) && p50="$R_P50"
        (( R_P99 > p99 )) && p99="$R_P99"
        non2xx=$((non2xx + R_NON2XX)); sockerr=$((sockerr + R_SOCKERR)); requests=$((requests + R_REQUESTS))
        read -r wu ws <"$TMP/time-$name-$i"
        wrk_secs="$(awk -v a="$wrk_secs" -v u="$wu" -v s="$ws" 'BEGIN { print a + u + s }')"
    done
    R_RPS="$rps"; R_P50="$p50"; R_P99="$p99"; R_NON2XX="$non2xx"; R_SOCKERR="$sockerr"; R_REQUESTS="$requests"
    rest="$(awk -v c=$((c1 - c0)) -v sv="$(snapshot_delta "$TMP/svc0" "$TMP/svc1")" -v m=$((m1 - m0)) \
        -v q=$((q1 - q0)) -v st=$((s1 - s0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" -v n="$R_REQUESTS" -v w="$wrk_secs" 'BEGIN {
        secs = t1 - t0; nodes = c / hz; svc = sv / hz; other = m / hz - nodes - svc - w
        if (other < 0) other = 0
        printf "  cpu: nodes %.0f%% of a core (%.1f us/request), PostgreSQL+Redis %.0f%% (%.1f us/request), wrk %.0f%%, irq+softirq %.0f%%, other processes %.0f%%, steal %.0f%%\n",
               100 * nodes / secs, 1e6 * nodes / n, 100 * svc / secs, 1e6 * svc / n, 100 * w / secs,
               100 * q / hz / secs, 100 * other / secs, 100 * st / hz / secs
        print int(100 * other / secs) > "/dev/stderr" }' 2>"$TMP/other-$name")"
    echo "$rest"
    R_NOISY=""
    if (( $(cat "$TMP/other-$name") > NOISE )); then
        R_NOISY="other processes used $(cat "$TMP/other-$name")% of a core"
        echo "  WARNING: $R_NOISY: noisy"
    fi
    R_WARNED=$(( $(warnings_count) - w0 ))
    (( R_WARNED == 0 )) || echo "  the nodes logged $R_WARNED warnings during the run (see the end)"
    printf '  => %s: %s req/s, p50 %s, p99 %s\n' "$name" "$R_RPS" "$(ms "$R_P50")" "$(ms "$R_P99")"
}

# ---- results ---------------------------------------------------------------------------------

# Per scenario id: its label, and per round its figures (keys "ID.ROUND").
declare -A LABEL RPS P50 P99 ERRS NOISY FAILED
ORDER=()
scenario() { # scenario ID LABEL
    LABEL[$1]="$2"
    ORDER+=("$1")
}
scenario s_live    "single: liveness"
scenario s_verify  "single: verify cached key"
scenario s_credits "single: verify with credits"
scenario s_rl      "single: ratelimit.limit"
scenario s_random  "single: verify random of $KEYS"
scenario c_live    "cluster, node A: liveness"
scenario c_verify  "cluster, node A: verify cached key"
scenario c_credits "cluster, node A: verify with credits"
scenario c_rl      "cluster, node A: ratelimit.limit"
scenario c_random  "cluster, node A: verify random of $KEYS"
scenario b_verify  "cluster, A+B at once: verify cached key"
scenario b_credits "cluster, A+B at once: verify with credits"
scenario b_rl      "cluster, A+B at once: ratelimit.limit"

# The targets: cluster scenario, the single-node scenario it is compared with, minimum ratio.
TARGETS=("c_verify s_verify 0.8" "c_rl s_rl 0.5" "c_credits s_credits 2")
# Scenarios shown with their ratio to a single-node scenario but without a target.
declare -A COMPARED=([c_live]=s_live [c_random]=s_random [b_verify]=s_verify [b_credits]=s_credits [b_rl]=s_rl)

# measure ID ROUND SCRIPT URL [URL2]: run_wrk, then keep the figures.
measure() {
    local id="$1" round="$2"
    log "${LABEL[$id]} (round $round of $ROUNDS)"
    if ! run_wrk "$id-$round" "${@:3}"; then
        FAILED[$id]="wrk failed in round $round"
        return 0
    fi
    RPS[$id.$round]="$R_RPS"; P50[$id.$round]="$R_P50"; P99[$id.$round]="$R_P99"
    (( R_NON2XX + R_SOCKERR == 0 )) || ERRS[$id]="${ERRS[$id]:+${ERRS[$id]}; }round $round: $R_NON2XX non-2xx, $R_SOCKERR socket errors of $R_REQUESTS"
    [[ -z "$R_NOISY" ]] || NOISY[$id]="${NOISY[$id]:+${NOISY[$id]}; }round $round: $R_NOISY"
}

fail() { # fail ID REASON: the scenario is reported FAILED (and not measured)
    FAILED[$1]="$2"
    echo "  => ${LABEL[$1]}: FAILED: $2"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# values ARRAY ID: the figures of every round of ID, one a line.
values() {
    local -n arr="$1"
    local r
    for (( r = 1; r <= ROUNDS; r++ )); do
        [[ -z "${arr[$2.$r]:-}" ]] || echo "${arr[$2.$r]}"
    done
}
# ratios ID REF: per round, the rate of ID over the rate of REF, one a line.
ratios() {
    local r
    for (( r = 1; r <= ROUNDS; r++ )); do
        [[ -n "${RPS[$1.$r]:-}" && -n "${RPS[$2.$r]:-}" ]] || continue
        awk -v a="${RPS[$1.$r]}" -v b="${RPS[$2.$r]}" 'BEGIN { printf "%.3f\n", a / b }'
    done
}

# ---- the run ---------------------------------------------------------------------------------

log "keyward cluster bench: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "binary $BIN; database $DB_URL; Redis $REDIS_URL; duration $DURATION, threads $THREADS, connections $CONNECTIONS, keys $KEYS, rounds $ROUNDS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

psql "$PG_ADMIN" -qc "CREATE DATABASE $DB_NAME" >/dev/null || die "could not create database $DB_NAME"
DB_CREATED=1
# The CLI migrates the empty database; the workspace keeps `serve` from bootstrapping one.
WORKSPACE="$("$BIN" --database "$DB_URL" --log warn workspace create --name bench --json | json_field workspaceId)"
ROOT_KEY="$("$BIN" --database "$DB_URL" --log warn root-key create --workspace "$WORKSPACE" --name bench --json | json_field key)"
export BENCH_ROOT_KEY="$ROOT_KEY"

# Made once, on the first single node, and used by every phase: an API, a key without credits,
# a key with a balance it never runs out of, and KEYS stored keys for the random scenario.
API_ID=""
PLAIN_KEY=""
CREDIT_KEY=""
export BENCH_KEYFILE="$TMP/keys.txt"
export BENCH_MARKER_DIR="$TMP/markers"
rl_body() { # rl_body IDENTIFIER: a limit never reached
    echo "{\"namespace\":\"bench\",\"identifier\":\"$1\",\"limit\":1000000000,\"duration\":60000}"
}

setup_data() {
    local body
    body="$(post s apis.createApi '{"name":"bench"}')"
    [[ "$(status)" == 200 ]] || die "apis.createApi answered HTTP $(status): $body"
    API_ID="$(json_field data.apiId <<<"$body")"
    body="$(post s keys.createKey "{\"apiId\":\"$API_ID\"}")"
    [[ "$(status)" == 200 ]] || die "keys.createKey answered HTTP $(status): $body"
    PLAIN_KEY="$(json_field data.key <<<"$body")"
    body="$(post s keys.createKey "{\"apiId\":\"$API_ID\",\"credits\":{\"remaining\":1000000000}}")"
    [[ "$(status)" == 200 ]] || die "keys.createKey answered HTTP $(status): $body"
    CREDIT_KEY="$(json_field data.key <<<"$body")"
    echo "workspace $WORKSPACE, api $API_ID"
    if (( KEYS > 0 )); then
        python3 "$BENCH_DIR/load_keys.py" "$DB_URL" "$API_ID" "$KEYS" "$BENCH_KEYFILE"
    fi
}

# check NODE ID ROUTE BODY EXPECT: one call by hand; unless it answers 200 containing EXPECT, the
# scenario ID is FAILED (returns 1).
check() {
    local body
    body="$(post "$1" "$3" "$4")"
    echo "check on node $1: $3 $4 -> HTTP $(status) $body"
    if [[ "$(status)" != 200 || "$body" != *"$5"* ]]; then
        fail "$2" "$3 on node $1 answered HTTP $(status): $body"
        return 1
    fi
}

# warm NODE: verifies every stored key once on NODE (so the random scenario is all cache hits).
warm() {
    local started=$SECONDS valid
    rm -rf "$BENCH_MARKER_DIR" && mkdir -p "$BENCH_MARKER_DIR"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP_TIMEOUT}s" --timeout 10s \
        -s "$BENCH_DIR/verify_warmup.lua" "${NODE_URL[$1]}/v2/keys.verifyKey" >"$TMP/wrk-warm-$1.out" 2>&1 &
    WRK_PID=$!
    WRK_PIDS=("$WRK_PID")
    end_wrk_when_marked warm
    WRK_PIDS=()
    valid="$(cat "$BENCH_MARKER_DIR"/warm.* 2>/dev/null | sed -n 's/.*valid=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')"
    echo "warm-up of node $1: $valid of $KEYS keys answered valid in $((SECONDS - started))s"
    (( valid >= KEYS )) || echo "bench: WARNING: not every key verified as valid during the warm-up" >&2
}

# The scenarios every phase runs on node NODE; PREFIX is s (single) or c (cluster).
drive_node() {
    local prefix="$1" node="$2" round="$3" identifier="$4" url="${NODE_URL[$2]}"
    measure "${prefix}_live" "$round" liveness.lua "$url/v2/liveness"
    if [[ -z "${FAILED[${prefix}_verify]:-}" ]]; then
        BENCH_VERIFY_KEY="$PLAIN_KEY" measure "${prefix}_verify" "$round" verify_one.lua "$url/v2/keys.verifyKey"
    fi
    if [[ -z "${FAILED[${prefix}_credits]:-}" ]]; then
        BENCH_VERIFY_KEY="$CREDIT_KEY" measure "${prefix}_credits" "$round" verify_one.lua "$url/v2/keys.verifyKey"
    fi
    if [[ -z "${FAILED[${prefix}_rl]:-}" ]]; then
        BENCH_BODY="$(rl_body "$identifier")" measure "${prefix}_rl" "$round" post_one.lua "$url/v2/ratelimit.limit"
    fi
    if (( KEYS > 0 )) && [[ -z "${FAILED[${prefix}_random]:-}" ]]; then
        warm "$node"
        measure "${prefix}_random" "$round" verify_random.lua "$url/v2/keys.verifyKey"
    fi
}

# check_node NODE PREFIX IDENTIFIER: the calls by hand before a phase.
check_node() {
    check "$1" "$2_verify" keys.verifyKey "{\"key\":\"$PLAIN_KEY\"}" '"valid":true' || true
    check "$1" "$2_credits" keys.verifyKey "{\"key\":\"$CREDIT_KEY\"}" '"credits":' || true
    check "$1" "$2_rl" ratelimit.limit "$(rl_body "$3")" '"success":true' || true
}

for (( round = 1; round <= ROUNDS; round++ )); do
    log "round $round of $ROUNDS: a single node on PostgreSQL, without Redis"
    start_node s
    [[ -n "$API_ID" ]] || setup_data
    check_node s s "single-$RUN_ID"
    drive_node s s "$round" "single-$RUN_ID"
    stop_node s

    log "round $round of $ROUNDS: two nodes in cluster mode (--redis $REDIS_URL)"
    start_node a "$REDIS_URL"
    start_node b "$REDIS_URL"
    check_node a c "cluster-$RUN_ID"
    check_node b b "cluster-$RUN_ID"
    # Node B is up in cluster mode, with the keys cached, while node A is driven.
    drive_node c a "$round" "cluster-$RUN_ID"
    for what in verify credits rl; do
        [[ -z "${FAILED[b_$what]:-}" ]] || continue
        case "$what" in
            verify) BENCH_VERIFY_KEY="$PLAIN_KEY" measure b_verify "$round" verify_one.lua \
                        "${NODE_URL[a]}/v2/keys.verifyKey" "${NODE_URL[b]}/v2/keys.verifyKey" ;;
            credits) BENCH_VERIFY_KEY="$CREDIT_KEY" measure b_credits "$round" verify_one.lua \
                        "${NODE_URL[a]}/v2/keys.verifyKey" "${NODE_URL[b]}/v2/keys.verifyKey" ;;
            rl) BENCH_BODY="$(rl_body "cluster-$RUN_ID")" measure b_rl "$round" post_one.lua \
                        "${NODE_URL[a]}/v2/ratelimit.limit" "${NODE_URL[b]}/v2/ratelimit.limit" ;;
        esac
    done
    echo "last calls: verify with credits on B: $(post b keys.verifyKey "{\"key\":\"$CREDIT_KEY\"}")"
    echo "            ratelimit.limit on B: $(post b ratelimit.limit "$(rl_body "cluster-$RUN_ID")")"
    stop_node a
    stop_node b
done

echo
problems="$(cat "$TMP"/*.log 2>/dev/null | plain | grep -E ' (WARN|ERROR) ' || true)"
if [[ -n "$problems" ]]; then
    echo "node logs: $(wc -l <<<"$problems") warning/error lines, by message (the last of each shown):"
    awk '{ key = $2 " " $3; msg = $0; sub(/^[^ ]+ +[^ ]+ +[^ ]+ /, "", msg); m = msg; gsub(/ [a-z_]+=[^ ]*/, "", m)
           k = key " " m; n[k]++; last[k] = $0 } END { for (k in n) printf "  %6d x %s\n           last: %s\n", n[k], k, last[k] }' <<<"$problems"
else
    echo "node logs: no warnings or errors"
fi

# ---- summary -------------------------------------------------------------------------------

declare -A TARGET_OF REF_OF
for t in "${TARGETS[@]}"; do
    read -r id ref min <<<"$t"
    TARGET_OF[$id]="$min"; REF_OF[$id]="$ref"
done
for id in "${!COMPARED[@]}"; do REF_OF[$id]="${COMPARED[$id]}"; done

if (( ROUNDS > 1 )); then
    log "cluster summary (medians of $ROUNDS rounds; each ratio is the median of the per-round ratios; duration $DURATION, $THREADS wrk thread(s), $CONNECTIONS connections, $KEYS stored keys)"
else
    log "cluster summary (duration $DURATION, $THREADS wrk thread(s), $CONNECTIONS connections; A+B runs split them between the nodes; $KEYS stored keys)"
fi
NOTES=()
VERDICTS=()
{
    echo "scenario|req/s|p50|p99|vs liveness|vs single node|target|met?"
    for id in "${ORDER[@]}"; do
        label="${LABEL[$id]}"
        if [[ -n "${FAILED[$id]:-}" ]]; then
            echo "$label|-|-|-|-|-|${TARGET_OF[$id]:+>= ${TARGET_OF[$id]}x}|FAILED"
            NOTES+=("$label: ${FAILED[$id]}")
            [[ -z "${TARGET_OF[$id]:-}" ]] || VERDICTS+=("FAIL $label: ${FAILED[$id]}")
            continue
        fi
        rps="$(values RPS "$id" | median)"
        [[ -n "$rps" ]] || continue
        p50="$(values P50 "$id" | median)"; p99="$(values P99 "$id" | median)"
        live="${id%%_*}_live"; [[ "$live" != b_live ]] || live=c_live
        vs_live="-"; vs_single="-"; target="-"; met="-"
        [[ "$id" == "$live" ]] || vs_live="$(ratios "$id" "$live" | median | xargs -r printf '%.2f')"
        if [[ -n "${REF_OF[$id]:-}" ]]; then
            all="$(ratios "$id" "${REF_OF[$id]}" | paste -sd, | sed 's/,/, /g')"
            vs_single="$(ratios "$id" "${REF_OF[$id]}" | median | xargs -r printf '%.2f')"
            (( ROUNDS <= 1 )) || NOTES+=("$label: ratios to ${LABEL[${REF_OF[$id]}]} by round: $all")
        fi
        if [[ -n "${TARGET_OF[$id]:-}" ]]; then
            target=">= ${TARGET_OF[$id]}x"
            if [[ -z "$vs_single" || "$vs_single" == "-" ]]; then
                met="NO (no single-node figure)"
            else
                met="$(awk -v r="$vs_single" -v t="${TARGET_OF[$id]}" 'BEGIN { print (r + 0 >= t + 0) ? "yes" : "NO" }')"
            fi
            [[ -z "${ERRS[$id]:-}" || "$met" != yes ]] || met="NO (errors)"
            [[ -z "${NOISY[$id]:-}" ]] || met="$met (noisy)"
            if [[ "$met" == yes* ]]; then
                VERDICTS+=("PASS $label: ${vs_single}x ${LABEL[${REF_OF[$id]}]} (target >= ${TARGET_OF[$id]}x)")
            else
                VERDICTS+=("FAIL $label: ${vs_single}x ${LABEL[${REF_OF[$id]}]} (target >= ${TARGET_OF[$id]}x)${ERRS[$id]:+; errors}")
            fi
        fi
        [[ -z "${ERRS[$id]:-}" ]] || NOTES+=("$label: ${ERRS[$id]}")
        [[ -z "${NOISY[$id]:-}" ]] || NOTES+=("$label: noisy: ${NOISY[$id]}")
        echo "$label|$(printf '%.0f' "$rps")|$(ms "$p50")|$(ms "$p99")|$vs_live|$vs_single|$target|$met"
    done
} >"$TMP/summary" # not a pipe: NOTES and VERDICTS are filled in this shell
column -t -s '|' -o '  ' <"$TMP/summary"
for note in "${NOTES[@]}"; do echo "note: $note"; done
echo
for verdict in "${VERDICTS[@]}"; do echo "$verdict"; done
