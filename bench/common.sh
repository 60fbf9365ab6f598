# Helpers shared by bench/run.sh, bench/cluster.sh, bench/ab.sh and bench/profile.sh (sourced,
# not run). They read the callers' settings: IDLE_WAIT (wait_no_rustc), THREADS and
# BENCH_MARKER_DIR (end_wrk_when_marked), WRK_PID.

log() { printf '\n== %s  [%s]\n' "$*" "$(date +%T)"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# bench_prerequisites: installs wrk and GNU time when missing (apt-get); curl and python3 are needed.
bench_prerequisites() {
    local missing=() tool
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    [[ -x /usr/bin/time ]] || missing+=(time)
    if (( ${#missing[@]} > 0 )); then
        log "installing ${missing[*]}"
        apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
    fi
    for tool in curl python3; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
    done
}

# The server and wrk share the machine's cores: numbers taken while something compiles are noise.
# Before each measured run the scripts wait for rustc to finish; run_wrk marks runs during which
# other processes used the CPU anyway.
wait_no_rustc() {
    local waited=0
    while pgrep -x rustc >/dev/null 2>&1; do
        if (( waited >= IDLE_WAIT )); then
            echo "bench: WARNING: rustc is still running after ${IDLE_WAIT}s; numbers will be noisy" >&2
            break
        fi
        (( waited == 0 )) && echo "waiting for running rustc processes to finish (up to ${IDLE_WAIT}s)..."
        sleep 5
        waited=$((waited + 5))
    done
}

json_field() { # json_field PATH.TO.FIELD < json
    python3 -c 'import json,sys
v=json.load(sys.stdin)
for p in sys.argv[1].split("."): v=v[p]
print(v)' "$1"
}

plain() { sed 's/\x1b\[[0-9;]*m//g'; } # strips the colours of the server's log

CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime of a process

# Machine-wide CPU from /proc/stat, in ticks: "busy steal" (busy = user nice system irq softirq).
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# end_wrk_when_marked NAME: waits for the wrk run in WRK_PID; once every wrk thread has written its
# BENCH_MARKER_DIR/NAME.<tid> marker (a one-pass script is done), ends it with SIGINT.
end_wrk_when_marked() {
    while kill -0 "$WRK_PID" 2>/dev/null; do
        if (( $(find "$BENCH_MARKER_DIR" -name "$1.*" | wc -l) >= THREADS )); then
            kill -INT "$WRK_PID" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    wait "$WRK_PID" || true
    WRK_PID=""
}

# parse_result FILE: sets R_RPS, R_P50, R_P99 (us), R_NON2XX, R_SOCKERR, R_REQUESTS from the
# BENCH_RESULT line lib.lua's report wrote.
parse_result() {
    local line
    line="$(grep '^BENCH_RESULT' "$1" | tail -n 1)" || { cat "$1"; return 1; }
    R_RPS="$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")"
    R_P50="$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line")"
    R_P99="$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")"
    R_NON2XX="$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$line")"
    R_SOCKERR="$(sed -n 's/.* socket_errors=\([0-9]*\).*/\1/p' <<<"$line")"
    R_REQUESTS="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
}

ms() { awk -v u="$1" 'BEGIN { printf "%.2fms", u / 1000 }'; }

# wait_idle WHAT MAX_SECONDS TICKS_COMMAND...: waits until TICKS_COMMAND (which prints CPU ticks)
# grows by under 5% of a core per half second, at most MAX_SECONDS, so work left over from the
# previous scenario (such as flushing verification events) does not bleed into the next.
wait_idle() {
    local what="$1" max="$2" waited=0 a b
    shift 2
    while (( waited < max * 2 )); do
        a="$("$@")"; sleep 0.5; b="$("$@")"
        (( (b - a) * 40 < CLK_TCK )) && break
        waited=$((waited + 1))
    done
    if (( waited >= max * 2 )); then
        echo "$what still busy after ${max}s; going on anyway"
    elif (( waited > 0 )); then
        echo "waited $(awk -v w="$waited" 'BEGIN { print w / 2 }')s for $what to go idle"
    fi
}

# bench_scratch NAME: a scratch directory in TMP and a PIDS list; on exit every process in PIDS is
# stopped and the directory removed.
bench_scratch() {
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/keyward-$1.XXXXXX")"
    PIDS=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_up() { # wait_up URL: until it answers 2xx, at most 30 s
    local i
    for i in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    die "$1 did not answer"
}
