#!/usr/bin/env bash
# Flame graphs of keyward under load: perf samples the release server while wrk drives one
# scenario, inferno draws the SVG, bench/profile_summary.py prints where the time went. Not a test;
# never run in CI. See BENCHMARKS.md ("Profiles") for how to read the output.
#
# Usage: bench/profile.sh [SCENARIO...]   (default: liveness verify ratelimit)
#   liveness   GET /v2/liveness
#   verify     keys.verifyKey of one cached key without limits (scenario b of run.sh)
#   ratelimit  ratelimit.limit of one identifier (scenario h)
#   ratelimit-rotating  ratelimit.limit cycling through BENCH_RL_ROTATE identifiers (100,000;
#              scenario i)
#   bare-verify  the bare server's verify (bench/bare), for comparison
# Knobs: BENCH_BIN (default target/release/keyward, built unless set), BENCH_BARE_BIN,
# BENCH_PROFILE_OUT (default bench/profiles), BENCH_DURATION (seconds of sampling, default 8),
# BENCH_CONNECTIONS (32), BENCH_PROFILE_FREQ (sampling rate, default 499 Hz).
# Needs perf (Debian's linux-perf) and inferno (cargo install inferno); installs them if missing.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${BENCH_BIN:-$TARGET_DIR/release/keyward}"
BARE_BIN="${BENCH_BARE_BIN:-$TARGET_DIR/release/keyward-bench-bare}"
OUT="${BENCH_PROFILE_OUT:-$BENCH_DIR/profiles}"
SECONDS_SAMPLED="${BENCH_DURATION:-8}"
SECONDS_SAMPLED="${SECONDS_SAMPLED%s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
FREQ="${BENCH_PROFILE_FREQ:-499}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-600}"
export BENCH_DIR
source "$BENCH_DIR/common.sh"

scenarios=("$@")
(( ${#scenarios[@]} > 0 )) || scenarios=(liveness verify ratelimit)

bench_prerequisites
command -v perf >/dev/null 2>&1 || apt-get install -y linux-perf || die "perf is needed (apt-get install linux-perf)"
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
    log "installing inferno (cargo install inferno)"
    cargo install inferno --locked || die "cargo install inferno failed"
fi
if [[ -z "${BENCH_BIN:-}" ]]; then
    log "building the release binary"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
fi
if [[ " ${scenarios[*]} " == *" bare-verify "* && ! -x "$BARE_BIN" ]]; then
    cargo build --release --manifest-path "$BENCH_DIR/bare/Cargo.toml" --target-dir "$TARGET_DIR"
fi
mkdir -p "$OUT"

bench_scratch profile

DB="sqlite://$TMP/kw.db"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
WORKSPACE="$("$BIN" --database "$DB" --log warn workspace create --name profile --json | json_field workspaceId)"
ROOT_KEY="$("$BIN" --database "$DB" --log warn root-key create --workspace "$WORKSPACE" --name profile --json | json_field key)"
"$BIN" --database "$DB" --log warn serve --listen "127.0.0.1:$PORT" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_up "$BASE/v2/liveness"
post() { # post ROUTE BODY
    curl -fsS -X POST "$BASE/v2/$1" -H "Authorization: Bearer $ROOT_KEY" -H "Content-Type: application/json" -d "$2"
}
API_ID="$(post apis.createApi '{"name":"profile"}' | json_field data.apiId)"
KEY="$(post keys.createKey "{\"apiId\":\"$API_ID\"}" | json_field data.key)"
post ratelimit.limit '{"namespace":"profile","identifier":"hot","limit":1000000000,"duration":60000}' >/dev/null
export BENCH_ROOT_KEY="$ROOT_KEY" BENCH_VERIFY_KEY="$KEY"
export BENCH_BODY='{"namespace":"profile","identifier":"hot","limit":1000000000,"duration":60000}'
export BENCH_NAMESPACE=profile BENCH_RL_LIMIT=1000000000 BENCH_RL_DURATION=60000 BENCH_THREADS=1
export BENCH_IDENTIFIERS="${BENCH_RL_ROTATE:-100000}"

BARE_PID=""
for scenario in "${scenarios[@]}"; do
    pid="$SERVER_PID"
    case "$scenario" in
        liveness) script=liveness.lua; url="$BASE/v2/liveness" ;;
        verify) script=verify_one.lua; url="$BASE/v2/keys.verifyKey" ;;
        ratelimit) script=post_one.lua; url="$BASE/v2/ratelimit.limit" ;;
        ratelimit-rotating) script=ratelimit_rotating.lua; url="$BASE/v2/ratelimit.limit" ;;
        bare-verify)
            if [[ -z "$BARE_PID" ]]; then
                BARE_PORT="$(free_port)"
                "$BARE_BIN" --listen "127.0.0.1:$BARE_PORT" --fill 1000 >"$TMP/bare.log" 2>&1 &
                BARE_PID=$!
                PIDS+=("$BARE_PID")
                wait_up "http://127.0.0.1:$BARE_PORT/v2/liveness"
            fi
            pid="$BARE_PID"; script=verify_one.lua; url="http://127.0.0.1:$BARE_PORT/v2/keys.verifyKey"
            ;;
        *) die "unknown scenario $scenario (liveness, verify, ratelimit, ratelimit-rotating, bare-verify)" ;;
    esac
    wait_no_rustc
    log "$scenario: wrk -c$CONNECTIONS on $url, perf at $FREQ Hz for ${SECONDS_SAMPLED}s"
    key="$BENCH_VERIFY_KEY"
    [[ "$scenario" != bare-verify ]] || key=bare_00000000000000000000000000000000
    BENCH_VERIFY_KEY="$key" wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_SAMPLED + 3))s" --latency \
        -s "$BENCH_DIR/$script" "$url" >"$TMP/wrk-$scenario.out" 2>&1 &
    wrk_pid=$!
    sleep 1
    perf record -q -F "$FREQ" --call-graph dwarf,32768 -p "$pid" -o "$TMP/perf-$scenario.data" \
        -- sleep "$SECONDS_SAMPLED" >/dev/null 2>&1
    wait "$wrk_pid" || true
    grep '^BENCH_RESULT' "$TMP/wrk-$scenario.out" | sed 's/^/  /' || true
    perf script -i "$TMP/perf-$scenario.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/$scenario.folded"
    inferno-flamegraph --title "keyward bench/profile.sh: $scenario" --width 1600 \
        <"$OUT/$scenario.folded" >"$OUT/$scenario.svg"
    python3 "$BENCH_DIR/profile_summary.py" "$OUT/$scenario.folded" 15 | tee "$OUT/$scenario.txt"
    echo "  -> $OUT/$scenario.svg, $OUT/$scenario.txt"
done
