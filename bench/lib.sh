# shellcheck shell=bash
# bench/lib.sh — what bench/serve.sh, bench/tunnel.sh and bench/probe.sh
# share: logging, knob checks, the outer part (build, private network
# namespace, re-run inside it), process start/stop/wait helpers, iperf3,
# connlat and hold runs, RSS sampling, medians and report helpers.
#
# Sourced, never run:
#
#   ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
#   cd "$ROOT"
#   source "$ROOT/bench/lib.sh"
#
# It defines functions, two constants and ODBENCH_TOP (empty; set by
# bench_outer) and runs nothing else. probe.sh uses only wait_for. The caller
# runs under `set -euo pipefail` from the repo root ($ROOT) and owns its
# knobs (DURATION ROUNDS PEERS LAT_COUNT PAYLOAD PORT_BASE BUILD OUT_DIR
# NETNS), which these functions read. serve.sh and tunnel.sh also keep, under
# the same names, ALL_PEERS (every peer, in port order), SKIP (PEER → why it
# is skipped), ACTIVE (the peers that run) and FRONT (PEER/SET → the port its
# traffic goes to); the functions that use them say so.
#
# Constants: LO (127.0.0.1, where everything listens), BENCH_BIN (the
# onedoor-bench binary, relative to the repo root).
#
# Checks and logging:
#   log MSG...            a timestamped line on stderr
#   die MSG...            log "error: MSG" and exit 1
#   default_netns         print NETNS's default: 1 as root, else 0
#   require_whole VAR...  die unless each named variable is a whole number
#   require_known_peers   die unless each word of PEERS is in ALL_PEERS
#
# Outer part (serve.sh, tunnel.sh):
#   bench_outer NAME NS_PREFIX  finish CMDLINE (PAYLOAD if not the default,
#       sudo/bash and bench/NAME.sh), check the tools, build (BUILD=1), make
#       WORK=OUT_DIR/NAME-STAMP; with NETNS=1 create the namespace
#       NS_PREFIX-PID, re-run bench/NAME.sh inside it, finish and exit with
#       its status; with NETNS=0 return, the inner part following in this
#       same process (ODBENCH_TOP=1)
#   outer_cleanup         EXIT trap of the outer part: stop the inner run,
#       kill what is left in the namespace, delete it
#   finish                chown OUT_DIR to the sudo user; copy the report to
#       OUT_DIR/NAME-STAMP.md and print it
#
# Inner part (serve.sh, tunnel.sh):
#   inner_setup LISTEN_S  IPERF_PORT (PORT_BASE+1), ECHO_PORT (PORT_BASE+100);
#       with NETNS=1 bring lo up and widen the ephemeral port range; raise
#       the fd soft limit to the hard one (FD_LIMIT); arm inner_cleanup;
#       LISTEN_S bounds wait_listen (seconds)
#   start NAME CMD...     CMD in the background, output to $WORK/NAME.log;
#       its pid in LAST_PID and in PIDS
#   run CMD...            CMD in the foreground, interruptibly
#   stop PID [SIGNAL]     signal PID and its descendants (TERM), wait up to
#       3 s, then SIGKILL what is left
#   forget PID            drop PID from PIDS
#   descendants PID       the pids below PID, one a line
#   any_alive PID...      whether one of the PIDs still runs
#   inner_cleanup         EXIT trap of the inner part: stop all of PIDS (and
#       finish when this process is also the outer part)
#   listening PORT        whether a TCP socket listens on PORT
#   listening_udp PORT    whether a UDP socket is bound to PORT
#   wait_listen PORT PID... [udp]  until PORT listens (LISTEN_S bound; fails
#       early when one of the PIDs died); "udp": a UDP socket
#   wait_for FILE PATTERN SECONDS PID  until a line of FILE matches PATTERN
#       (fails early when PID died)
#   require_free_ports PORT...  die if one of them listens (NETNS=0)
#   peer_index PEER       PEER's position in ALL_PEERS (0-based)
#   rotate N              ACTIVE, rotated left by N
#   start_echo_server     `onedoor-bench echo-server` on ECHO_PORT (ECHO_PID)
#   mark_start, mark_end  load average and time at the start and end of the
#       measurements: LOAD_START, LOAD_END, ELAPSED (seconds)
#
# Measuring:
#   iperf_once PEER TEST ROUND PORT [PID...] [-- IPERF3_OPTION...]  one
#       iperf3 run (see below)
#   latency_rounds WHAT UNIT  ROUNDS rounds of `onedoor-bench connlat`
#       through each ACTIVE, not SKIPped peer's FRONT[PEER/lat], into
#       $WORK/lat.tsv
#   clamp_hold            HOLD_N: HOLD, at most (FD_LIMIT - 64) / 2; fails
#       when it had to lower it
#   hold_start LABEL PORT COUNT TIMEOUT PID...  and
#   hold_release LABEL    `onedoor-bench hold` of COUNT connections (see below)
#   rss_kib PID           VmRSS of PID in KiB
#   rss_tree PID...       VmRSS in KiB of the PIDs and all their descendants
#   median                the median of the numbers on stdin ("nan": none)
#
# Report:
#   tput_med PEER TEST COLUMN  median over rounds of a $WORK/tput.tsv column
#   tput_best PEER TEST   the best Gbit/s of the rounds
#   cpu_per_gb_med PEER TEST  CPU s per GB moved, median over rounds
#   lat_med PEER COLUMN   median over rounds of a $WORK/lat.tsv column
#   isnum X               whether X is a number
#   fmt FORMAT VALUE      printf, or "—" when VALUE is no number
#   ratio A B             A/B as "0.56×", or "—"
#   verdict EXPR          PASS when the awk expression holds, else FAIL
#   onedoor_rev           the repo's short commit, "+dirty" when changed
#   report_head NAME TEXT the report's title, command and "Machine: …" line;
#       TEXT comes before the iperf3 version
#   row_medians PEER      the figures of PEER's row in the main table:
#       ROW_G1, ROW_B1 (1 stream Gbit/s, median and best), ROW_G4 (-P4),
#       ROW_C1, ROW_C4 (CPU s/GB), ROW_L50, ROW_L99 (new connection µs)

LO=127.0.0.1
BENCH_BIN=target/release/onedoor-bench
ODBENCH_TOP=

# ---------------------------------------------------------------------------
# Checks and logging
# ---------------------------------------------------------------------------
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

default_netns() {
    if [[ $(id -u) == 0 ]]; then echo 1; else echo 0; fi
}

require_whole() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
    done
}

require_known_peers() {
    local p
    for p in $PEERS; do
        [[ " $ALL_PEERS " == *" $p "* ]] || die "unknown peer '$p' in PEERS (known: $ALL_PEERS)"
    done
}

# ---------------------------------------------------------------------------
# Outer part: build, create the namespace, run the inner part inside it.
# ---------------------------------------------------------------------------

# finish: copy the report next to its logs' directory and print it (done by
# the top-level process only).
finish() {
    if [[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
        chown -R "$SUDO_USER": "$ROOT/$OUT_DIR" 2>/dev/null || true
    fi
    if [[ -f $WORK/report.md ]]; then
        cp "$WORK/report.md" "$ROOT/$OUT_DIR/$BENCH_NAME-$STAMP.md"
        echo
        cat "$WORK/report.md"
        echo
        log "report: $OUT_DIR/$BENCH_NAME-$STAMP.md   logs and raw data: $OUT_DIR/$BENCH_NAME-$STAMP/"
    fi
}

# shellcheck disable=SC2317 # called by the trap
outer_cleanup() {
    local pids i
    if [[ -n $INNER ]] && kill -0 "$INNER" 2>/dev/null; then
        kill -TERM "$INNER" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$INNER" 2>/dev/null || break
            sleep 0.1
        done
    fi
    # Whatever is left in the namespace was started by this script.
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$NS" 2>/dev/null || true
}

bench_outer() {
    local build_cmd status
    BENCH_NAME=$1
    STAMP=$(date -u +%Y-%m-%d-%H%M%S)
    # shellcheck disable=SC2089 # CMDLINE is text to show, never run
    [[ $PAYLOAD == 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n' ]] || CMDLINE+=" PAYLOAD='$PAYLOAD'"
    if [[ $(id -u) == 0 ]]; then
        CMDLINE="sudo $CMDLINE bench/$BENCH_NAME.sh"
    else
        CMDLINE="$CMDLINE bash bench/$BENCH_NAME.sh"
    fi
    log "command: $CMDLINE"

    command -v jq >/dev/null || die "jq is missing (apt-get install jq)"
    command -v ss >/dev/null || die "ss is missing (apt-get install iproute2)"
    command -v ps >/dev/null || die "ps is missing (apt-get install procps)"

    if [[ $BUILD == 1 ]]; then
        build_cmd="cargo build --release -p onedoor -p onedoor-bench"
        log "$build_cmd"
        if [[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
            # Build as the invoking user: their toolchain, their target/ ownership.
            sudo -u "$SUDO_USER" -i bash -c "cd '$ROOT' && $build_cmd" || die "build failed"
        else
            $build_cmd || die "build failed"
        fi
    fi
    [[ -x $BENCH_BIN ]] || die "$BENCH_BIN is missing (run with BUILD=1)"

    WORK="$ROOT/$OUT_DIR/$BENCH_NAME-$STAMP"
    mkdir -p "$WORK"
    # shellcheck disable=SC2090
    export WORK STAMP CMDLINE ODBENCH_INNER=1

    if [[ $NETNS == 1 ]]; then
        [[ $(id -u) == 0 ]] || die "NETNS=1 needs root (or run with NETNS=0)"
        NS="$2-$$"
        INNER=
        trap outer_cleanup EXIT
        trap 'exit 130' INT TERM
        ip netns add "$NS" || die "ip netns add $NS failed"
        log "network namespace $NS (removed on exit)"
        status=0
        # In the background, so a signal reaches our trap at once.
        ip netns exec "$NS" bash "$ROOT/bench/$BENCH_NAME.sh" &
        INNER=$!
        wait "$INNER" || status=$?
        INNER=
        finish
        exit "$status"
    fi
    log "NETNS=0: running on the host's loopback"
    ODBENCH_TOP=1
}

# ---------------------------------------------------------------------------
# Inner part: runs inside the namespace (or on the host with NETNS=0).
# ---------------------------------------------------------------------------
inner_setup() {
    LISTEN_S=$1
    IPERF_PORT=$((PORT_BASE + 1))
    ECHO_PORT=$((PORT_BASE + 100))
    if [[ $NETNS == 1 ]]; then
        ip link set lo up
        # Namespaced sysctl, this namespace only: more ephemeral ports for the
        # latency runs' TIME_WAITs (wstunnel and rathole use two per stream)
        # plus the held connections.
        sysctl -qw net.ipv4.ip_local_port_range="20000 65000"
    fi
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # shellcheck disable=SC2034 # the scripts read it
    FD_LIMIT=$(ulimit -n)
    PIDS=()
    LAST_PID=
    trap inner_cleanup EXIT
    trap 'exit 130' INT TERM
}

# start NAME CMD...: run CMD in the background, output to $WORK/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
descendants() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
        echo "$c"
        descendants "$c"
    done
}
# stop PID [SIGNAL]: signal a process and its descendants, wait up to 3 s,
# then SIGKILL what is left.
stop() {
    local pid=$1 sig=${2:-TERM} all i
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        forget "$pid"
        return 0
    fi
    all="$pid $(descendants "$pid" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -"$sig" $all 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $all 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}
# forget PID: drop it from PIDS, so the exit trap never signals a pid reused
# by someone else.
forget() {
    local keep=() p
    for p in "${PIDS[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}
any_alive() {
    local p
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null && return 0
    done
    return 1
}
# shellcheck disable=SC2317 # called by the trap
inner_cleanup() {
    local p all="" i
    trap - INT TERM
    for p in "${PIDS[@]}"; do
        all+=" $p $(descendants "$p" | tr '\n' ' ')"
    done
    if [[ -n ${all// /} ]]; then
        # shellcheck disable=SC2086
        kill -TERM $all 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            # shellcheck disable=SC2086
            any_alive $all || break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        kill -KILL $all 2>/dev/null || true
    fi
    if [[ -n ${ODBENCH_TOP:-} ]]; then finish; fi
    return 0
}

# run CMD...: run CMD and wait for it, interruptibly (a signal runs our trap
# at once instead of after CMD ends).
run() {
    "$@" &
    local p=$! rc=0
    PIDS+=("$p")
    wait "$p" || rc=$?
    forget "$p"
    return "$rc"
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
listening_udp() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
# wait_listen PORT PID... [udp]: until PORT listens (LISTEN_S bound; fails
# early if one of the PIDs died). With a last argument "udp", a UDP socket.
wait_listen() {
    local port=$1 i p check=listening
    shift
    local pids=()
    for p in "$@"; do
        if [[ $p == udp ]]; then check=listening_udp; else pids+=("$p"); fi
    done
    for ((i = 0; i < LISTEN_S * 20; i++)); do
        $check "$port" && return 0
        for p in "${pids[@]}"; do
            kill -0 "$p" 2>/dev/null || return 1
        done
        sleep 0.05
    done
    return 1
}
# wait_for FILE PATTERN SECONDS PID: until a line of FILE matches.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || { grep -q -- "$2" "$1" 2>/dev/null && return 0; return 1; }
        sleep 0.1
    done
    return 1
}
# Ports must be free (matters with NETNS=0).
require_free_ports() {
    local port
    for port in "$@"; do
        listening "$port" && die "port $port is in use (set PORT_BASE, or use NETNS=1)"
    done
    return 0
}
peer_index() {
    local i=0 p
    for p in $ALL_PEERS; do
        [[ $p == "$1" ]] && { echo "$i"; return; }
        i=$((i + 1))
    done
}
# rotate N: the active peers, rotated left by N.
rotate() {
    local n=$(($1 % ${#ACTIVE[@]}))
    echo "${ACTIVE[@]:n}" "${ACTIVE[@]:0:n}"
}
# mark_start, mark_end: the load average and time at the start and the end
# of the measurements (LOAD_START, LOAD_END; ELAPSED seconds in between).
mark_start() {
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    T_START=$SECONDS
}
mark_end() {
    LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
    ELAPSED=$((SECONDS - T_START))
}
start_echo_server() {
    start echo-server "$BENCH_BIN" echo-server "$LO:$ECHO_PORT"
    ECHO_PID=$LAST_PID
    wait_listen "$ECHO_PORT" "$ECHO_PID" || die "echo-server did not start"
}

# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

# iperf_once PEER TEST ROUND PORT [PID...] [-- IPERF3_OPTION...]: one
# `iperf3 -c LO -p PORT -t DURATION -J` run to a fresh `iperf3 -s -1` on
# IPERF_PORT, its JSON in IPERF_JSON ($WORK/iperf-PEER-TEST-rROUND.json),
# while `onedoor-bench cputree PID...` samples the CPU of the PIDs' process
# trees (no PID: not sampled). Sets IPERF_GBPS and IPERF_BYTES (what the
# server received; empty when the run failed), IPERF_ERR (iperf3's error)
# and IPERF_CPU_MS (nan when not sampled). When the iperf3 server does not
# start, says so and leaves IPERF_JSON empty.
# shellcheck disable=SC2034 # IPERF_*: results for the caller
iperf_once() {
    local peer=$1 test=$2 round=$3 port=$4 pids=() srv cpu=""
    shift 4
    while [[ $# -gt 0 && $1 != -- ]]; do
        pids+=("$1")
        shift
    done
    if [[ $# -gt 0 ]]; then shift; fi
    IPERF_JSON=
    start "iperf3-server" iperf3 -s -1 -B "$LO" -p "$IPERF_PORT"
    srv=$LAST_PID
    wait_listen "$IPERF_PORT" "$srv" || { log "iperf3 -s did not start"; stop "$srv"; return 0; }
    IPERF_JSON="$WORK/iperf-$peer-$test-r$round.json"
    if [[ ${#pids[@]} -gt 0 ]]; then
        start "cputree-$peer-$test-r$round" "$BENCH_BIN" cputree "${pids[@]}" --label "$peer"
        cpu=$LAST_PID
    fi
    run timeout $((DURATION + 20)) iperf3 -c "$LO" -p "$port" -t "$DURATION" -J \
        --connect-timeout 3000 "$@" >"$IPERF_JSON" 2>"$IPERF_JSON.err" || true
    if [[ -n $cpu ]]; then stop "$cpu"; fi
    stop "$srv"
    # What the iperf3 server received (for UDP: after losses).
    IPERF_GBPS=$(jq -r '(.end.sum_received.bits_per_second // empty) / 1e9' "$IPERF_JSON" 2>/dev/null || true)
    IPERF_BYTES=$(jq -r '.end.sum_received.bytes // empty' "$IPERF_JSON" 2>/dev/null || true)
    IPERF_ERR=$(jq -r '.error // empty' "$IPERF_JSON" 2>/dev/null || true)
    IPERF_CPU_MS=nan
    if [[ -n $cpu ]]; then
        IPERF_CPU_MS=$(jq -r '.cpu_ms // "nan"' "$WORK/cputree-$peer-$test-r$round.log" 2>/dev/null || echo nan)
    fi
}

# latency_rounds WHAT UNIT: ROUNDS rounds, each peer of ACTIVE not in SKIP
# once per round in rotated order, of LAT_COUNT `onedoor-bench connlat`
# connections (connect, send PAYLOAD, first echoed byte, close) to
# LO:FRONT[PEER/lat]; a line per run in $WORK/lat.tsv (round, peer, p50 µs,
# p99 µs, errors, count). WHAT and UNIT name them in the log
# ("new-connection" "connections").
latency_rounds() {
    local r p out
    for ((r = 1; r <= ROUNDS; r++)); do
        log "$1 latency, round $r/$ROUNDS ($LAT_COUNT $2 per peer)"
        for p in $(rotate $((r - 1))); do
            [[ -n ${SKIP[$p]:-} ]] && continue
            out="$WORK/connlat-$p-r$r.json"
            run timeout 180 "$BENCH_BIN" connlat "$LO:${FRONT[$p/lat]}" --count "$LAT_COUNT" \
                --payload "$PAYLOAD" --deadline 120s --label "$p" >"$out" 2>"$out.err" || true
            if [[ -s $out ]]; then
                jq -r --arg r "$r" --arg p "$p" '[$r, $p, .p50_us, .p99_us, .errors, .count] | @tsv' "$out" >>"$WORK/lat.tsv"
                log "  $(jq -r '"\(.label)  p50 \(.p50_us) µs  p99 \(.p99_us) µs  errors \(.errors)"' "$out")"
            else
                log "  $p: connlat failed: $(head -c 300 "$out.err")"
            fi
        done
    done
}

# clamp_hold: HOLD_N: HOLD, but at most what fits under the
# fd limit at 2 fds per held connection, 64 kept for listeners, logs, the
# runtime. Returns 1 when it had to lower it (the caller says so).
clamp_hold() {
    local max=$(((FD_LIMIT - 64) / 2))
    HOLD_N=$HOLD
    if [[ $HOLD_N -gt $max ]]; then
        HOLD_N=$max
        return 1
    fi
    return 0
}
# hold_start LABEL PORT COUNT TIMEOUT PID...: `onedoor-bench hold` of COUNT
# connections to LO:PORT (each sends PAYLOAD and must see it echoed within
# TIMEOUT; its log $WORK/hold-LABEL.log, pid HELD_PID) while `onedoor-bench
# cputree PID...` samples the CPU of the PIDs' trees (pid HELD_CPU_PID).
# Returns once they are established (200 s bound) and 1 s has passed.
hold_start() {
    local label=$1 port=$2 n=$3 limit=$4
    shift 4
    start "cputree-hold-$label" "$BENCH_BIN" cputree "$@" --label "$label"
    HELD_CPU_PID=$LAST_PID
    start "hold-$label" "$BENCH_BIN" hold "$LO:$port" --count "$n" --payload "$PAYLOAD" \
        --timeout "$limit" --deadline 150s --label "$label"
    HELD_PID=$LAST_PID
    if ! wait_for "$WORK/hold-$label.log" '"event":"established"' 200 "$HELD_PID"; then
        log "  $label: hold did not report"
    fi
    sleep 1
}
# hold_release LABEL: release what hold_start LABEL holds (each connection
# echoes once more), stop the sampling; its JSON lines in
# $WORK/hold-LABEL.json. Sets HELD_ESTABLISHED, HELD_ALIVE (at release),
# HELD_DROPPED (while held), HELD_VFAIL (failed the check at release) and
# HELD_CPU_MS (the CPU of the sampled trees meanwhile).
# shellcheck disable=SC2034 # HELD_*: results for the caller
hold_release() {
    local label=$1 out="$WORK/hold-$1.json"
    kill -TERM "$HELD_PID" 2>/dev/null || true
    wait_for "$WORK/hold-$label.log" '"event":"released"' 30 "$HELD_PID" || true
    stop "$HELD_PID"
    stop "$HELD_CPU_PID"
    cp "$WORK/hold-$label.log" "$out"
    HELD_ESTABLISHED=$(jq -r 'select(.event == "established") | .established' "$out" 2>/dev/null || echo 0)
    HELD_ALIVE=$(jq -r 'select(.event == "released") | .alive' "$out" 2>/dev/null || echo nan)
    HELD_DROPPED=$(jq -r 'select(.event == "released") | .dropped' "$out" 2>/dev/null || echo nan)
    HELD_VFAIL=$(jq -r 'select(.event == "released") | .verify_failed' "$out" 2>/dev/null || echo nan)
    HELD_CPU_MS=$(jq -r '.cpu_ms // "nan"' "$WORK/cputree-hold-$label.log" 2>/dev/null || echo nan)
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# rss_tree PID...: VmRSS in KiB of the PIDs and all their descendants.
rss_tree() {
    local p sum=0 r x
    for p in $(for x in "$@"; do echo "$x"; descendants "$x"; done | sort -u); do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}
median() {
    { grep -E '^-?[0-9.]+([eE][-+]?[0-9]+)?$' || true; } | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
tput_med() { # PEER TEST COLUMN(4=gbps 5=bytes 6=cpu_ms; tunnel.sh: 7=lost%)
    awk -F'\t' -v p="$1" -v t="$2" -v c="$3" '$2 == p && $3 == t { print $c }' "$WORK/tput.tsv" | median
}
tput_best() { # PEER TEST: the highest Gbit/s of the rounds (noise only ever lowers it)
    awk -F'\t' -v p="$1" -v t="$2" '$2 == p && $3 == t && $4 != "nan" { print $4 }' "$WORK/tput.tsv" | sort -g | tail -1
}
# CPU s/GB per run, then the median over runs.
cpu_per_gb_med() {
    awk -F'\t' -v p="$1" -v t="$2" '$2 == p && $3 == t && $5 + 0 > 0 && $6 != "nan" { print ($6 / 1000) / ($5 / 1e9) }' "$WORK/tput.tsv" | median
}
lat_med() { # PEER COLUMN(3=p50 4=p99 5=errors)
    awk -F'\t' -v p="$1" -v c="$2" '$2 == p { print $c }' "$WORK/lat.tsv" | median
}
isnum() { [[ $1 =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; }
fmt() { # FORMAT VALUE: printf, or "—" for a missing value
    # shellcheck disable=SC2059 # the format is the argument
    if isnum "$2"; then printf "$1" "$2"; else printf '—'; fi
}
ratio() { # A B: A/B formatted "0.56×"
    if isnum "$1" && isnum "$2" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'
    else printf '—'; fi
}
verdict() { if awk "BEGIN { exit !($1) }" 2>/dev/null; then echo PASS; else echo FAIL; fi; }
onedoor_rev() {
    echo "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo +dirty)"
}
# report_head NAME TEXT: "# onedoor NAME benchmark — date", the command
# (CMDLINE), then cores, CPU, kernel, load (LOAD_START, LOAD_END), ELAPSED
# seconds, namespace or host; TEXT, then the iperf3 version.
report_head() {
    echo "# onedoor $1 benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`$CMDLINE\`"
    echo
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r);" \
        "load average $LOAD_START at start, $LOAD_END at end; $ELAPSED s." \
        "$(if [[ $NETNS == 1 ]]; then echo "Private network namespace, loopback."; else echo "Host loopback."; fi)" \
        "${2}iperf $(iperf3 --version 2>/dev/null | head -1 | awk '{ print $2 }')."
}
# row_medians PEER: the medians (and the best single stream) of PEER's runs,
# for its row in the main table.
# shellcheck disable=SC2034 # ROW_*: for the caller
row_medians() {
    ROW_G1=$(tput_med "$1" 1 4)
    ROW_B1=$(tput_best "$1" 1)
    ROW_G4=$(tput_med "$1" P4 4)
    ROW_C1=$(cpu_per_gb_med "$1" 1)
    ROW_C4=$(cpu_per_gb_med "$1" P4)
    ROW_L50=$(lat_med "$1" 3)
    ROW_L99=$(lat_med "$1" 4)
}

# haproxy_cfg FILE FRONT BACKEND SPLICE(no|auto|always): HAProxy in TCP mode
# relaying LO:FRONT to LO:BACKEND (serve.sh's haproxy peers, tunnel.sh's
# haproxy-pair).
haproxy_cfg() { # FILE FRONT BACKEND SPLICE(no|auto|always)
    {
        echo "global"
        # 4000: with splice, 2 fds per connection plus pipes must fit in 20000.
        echo "    maxconn 4000"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 5s"
        echo "    timeout client 1h"
        echo "    timeout server 1h"
        case $4 in
            auto) echo "    option splice-auto" ;;
            # splice-auto never splices on loopback here (strace: only
            # recvfrom/sendto), so also force it, both ways.
            always) printf '    option splice-request\n    option splice-response\n' ;;
        esac
        echo "frontend front"
        echo "    bind $LO:$2"
        echo "    default_backend back"
        echo "backend back"
        echo "    server s1 $LO:$3"
    } >"$1"
}
