#!/usr/bin/env bash
# Side by side: two or more keyward builds on one scenario, in alternating rounds, so a change is
# measured against the build before it on the same machine at the same time (the way the
# "What changed" rows of BENCHMARKS.md are measured). Not a test; never run in CI.
#
# Usage: bench/ab.sh SCENARIO NAME=BINARY NAME=BINARY...
#   SCENARIO: liveness | verify | ratelimit | ratelimit-rotating (BENCH_RL_ROTATE identifiers,
#             100,000 by default: scenario i)
#   e.g.  cp target/release/keyward /tmp/kw-before   (then build the change)
#         bench/ab.sh ratelimit-rotating before=/tmp/kw-before after=target/release/keyward
# Each build serves its own fresh SQLite database; every round runs wrk -t1 once against each, in
# the order given. Per run it prints req/s, p50, p99, the server's CPU per request (user + system,
# from /proc) and its VmHWM (peak RSS so far) and VmRSS.
# Knobs: BENCH_ROUNDS (3), BENCH_DURATION (seconds a run, 10), BENCH_CONNECTIONS (32),
# BENCH_RL_ROTATE (100000), BENCH_PAUSE (seconds between runs, 3).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS="${BENCH_ROUNDS:-3}"
DURATION="${BENCH_DURATION:-10}"
DURATION="${DURATION%s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
PAUSE="${BENCH_PAUSE:-3}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-600}"
export BENCH_DIR BENCH_THREADS=1 BENCH_CONNECTIONS="$CONNECTIONS"
source "$BENCH_DIR/common.sh"

usage() { die "usage: bench/ab.sh liveness|verify|ratelimit|ratelimit-rotating NAME=BINARY NAME=BINARY..."; }
(( $# >= 3 )) || usage
scenario="$1"
shift
case "$scenario" in
    liveness) script=liveness.lua; route=liveness ;;
    verify) script=verify_one.lua; route=keys.verifyKey ;;
    ratelimit) script=post_one.lua; route=ratelimit.limit ;;
    ratelimit-rotating) script=ratelimit_rotating.lua; route=ratelimit.limit ;;
    *) usage ;;
esac
bench_prerequisites

bench_scratch ab
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

export BENCH_NAMESPACE=ab BENCH_RL_LIMIT=1000000000 BENCH_RL_DURATION=60000
export BENCH_IDENTIFIERS="${BENCH_RL_ROTATE:-100000}"
export BENCH_BODY='{"namespace":"ab","identifier":"hot","limit":1000000000,"duration":60000}'
NAMES=()
declare -A PID URL ROOT KEY
for spec in "$@"; do
    name="${spec%%=*}"
    bin="${spec#*=}"
    [[ "$name" != "$spec" && -n "$name" && -x "$bin" ]] || die "'$spec' is not NAME=BINARY (an executable)"
    [[ -z "${PID[$name]:-}" ]] || die "the name '$name' is given twice"
    db="sqlite://$TMP/$name.db"
    workspace="$("$bin" --database "$db" --log warn workspace create --name ab --json | json_field workspaceId)"
    ROOT[$name]="$("$bin" --database "$db" --log warn root-key create --workspace "$workspace" --name ab --json | json_field key)"
    port="$(free_port)"
    "$bin" --database "$db" --log warn serve --listen "127.0.0.1:$port" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    base="http://127.0.0.1:$port"
    wait_up "$base/v2/liveness"
    KEY[$name]=""
    if [[ "$scenario" == verify ]]; then
        post=(curl -fsS -X POST -H "Authorization: Bearer ${ROOT[$name]}" -H "Content-Type: application/json")
        api="$("${post[@]}" "$base/v2/apis.createApi" -d '{"name":"side-by-side"}' | json_field data.apiId)" \
            || die "$name: apis.createApi failed"
        KEY[$name]="$("${post[@]}" "$base/v2/keys.createKey" -d "{\"apiId\":\"$api\"}" | json_field data.key)" \
            || die "$name: keys.createKey failed"
    fi
    URL[$name]="$base/v2/$route"
    NAMES+=("$name")
    echo "$name: $bin on $base (pid ${PID[$name]})"
done

log "$scenario: $ROUNDS rounds of ${DURATION}s per build, wrk -t1 -c$CONNECTIONS"
for round in $(seq 1 "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        pid="${PID[$name]}"
        wait_no_rustc
        c0="$(cpu_ticks "$pid")"
        BENCH_ROOT_KEY="${ROOT[$name]}" BENCH_VERIFY_KEY="${KEY[$name]}" \
            wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$BENCH_DIR/$script" "${URL[$name]}" \
            >"$TMP/wrk.out" 2>&1 || true
        c1="$(cpu_ticks "$pid")"
        parse_result "$TMP/wrk.out" || die "wrk gave no result for $name"
        (( R_NON2XX == 0 )) || echo "bench: WARNING: $name answered $R_NON2XX non-2xx responses" >&2
        printf 'round %s %-10s %9.0f req/s  p50 %s  p99 %s  server CPU %5.1f us/request  VmHWM %4d MiB  VmRSS %4d MiB\n' \
            "$round" "$name" "$R_RPS" "$(ms "$R_P50")" "$(ms "$R_P99")" \
            "$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$R_REQUESTS" 'BEGIN { print (n > 0 ? 1e6 * c / hz / n : 0) }')" \
            "$(( $(status_kib "$pid" VmHWM) / 1024 ))" "$(( $(status_kib "$pid" VmRSS) / 1024 ))"
        sleep "$PAUSE"
    done
done
