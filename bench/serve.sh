#!/usr/bin/env bash
# bench/serve.sh — `onedoor serve` side by side with what users would run
# instead (sslh-fork, sslh-select, HAProxy with and without splice, socat)
# and with no proxy at all ("direct"), in ONE run, measured the same way.
#
#   sudo bench/serve.sh            (from the repo root; or: bash bench/serve.sh)
#
# What it measures (all on loopback, in a private network namespace when root):
#   1. Throughput: iperf3 -t DURATION -J, one stream and -P4, through each peer
#      to an `iperf3 -s` backend; Gbit/s and the ratio to direct. CPU seconds
#      per GB moved: the forwarder's utime+stime (its whole process tree,
#      sampled from /proc every 100 ms by `onedoor-bench cputree`, so
#      sslh-fork's and socat's per-connection children count) divided by the
#      bytes iperf3 received.
#   2. New-connection latency: `onedoor-bench connlat` (connect, send PAYLOAD,
#      an HTTP request, wait for the first echoed byte, close) through each
#      peer to `onedoor-bench echo-server`; p50/p99 in µs. serve and sslh
#      route it with their http probe. Not ssh: sslh forks a process per ssh
#      connection by default, sslh-select included, which would hide the
#      select loop this compares against.
#   3. Held connections: HOLD concurrent connections through serve (each sends
#      its first line and gets it echoed, so it is routed and the backend leg
#      is up); serve's VmRSS before/after, per connection pair. And
#      sslh-select at HOLD_SSLH, with the 1024 soft fd limit systemd gives a
#      service and with the raised limit.
# Every peer runs once per round, in an order rotated each round; tables show
# the median over rounds (the raw runs are listed below them). The machine
# is shared and noisy: read the ratios, which are taken within one run.
#
# Knobs (environment variables; defaults in brackets):
#   DURATION   seconds per iperf3 run                                   [5]
#   ROUNDS     rounds over all peers                                    [3]
#   PEERS      subset/order of: direct serve serve-sniff sslh-fork sslh-select
#              haproxy haproxy-splice haproxy-splice-always socat       [all]
#   LAT_COUNT  connlat connections per peer per round                   [2000]
#   PAYLOAD    first bytes of connlat/hold connections (\r \n escapes)
#                                    [GET / HTTP/1.1\r\nHost: bench\r\n\r\n]
#   HOLD       connections held through serve (clamped so serve fits
#              its 2 fds per pair under the fd hard limit)              [10000]
#   HOLD_SSLH  connections held through sslh-select, 0 = skip           [1000]
#   NETNS      1 = private network namespace (needs root), 0 = host lo  [1 if root]
#   PORT_BASE  first port used (iperf3 PORT_BASE+1, fronts above it)    [10000]
#   BUILD      1 = cargo build --release -p onedoor -p onedoor-bench    [1]
#   SERVE_BIN  the onedoor binary                  [target/release/onedoor]
#   OUT_DIR    where the report and logs go (git-ignored)               [bench/out]
#
# Needs: iperf3 sslh haproxy socat jq iproute2 (ss, ip) procps (ps).
# A missing peer is reported and skipped. Nothing leaves loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh source-path=SCRIPTDIR disable=SC1091
source "$ROOT/bench/lib.sh"

: "${DURATION:=5}" "${ROUNDS:=3}" "${LAT_COUNT:=2000}" "${HOLD:=10000}" "${HOLD_SSLH:=1000}"
: "${PAYLOAD:=GET / HTTP/1.1\r\nHost: bench\r\n\r\n}"
: "${PORT_BASE:=10000}" "${BUILD:=1}" "${SERVE_BIN:=target/release/onedoor}" "${OUT_DIR:=bench/out}"
ALL_PEERS="direct serve serve-sniff sslh-fork sslh-select haproxy haproxy-splice haproxy-splice-always socat"
: "${PEERS:=$ALL_PEERS}"
NETNS=${NETNS:-$(default_netns)}
export PAYLOAD DURATION ROUNDS LAT_COUNT HOLD HOLD_SSLH PORT_BASE BUILD SERVE_BIN OUT_DIR PEERS NETNS

require_whole DURATION ROUNDS LAT_COUNT HOLD HOLD_SSLH PORT_BASE
[[ $DURATION -ge 1 && $ROUNDS -ge 1 ]] || die "DURATION and ROUNDS must be at least 1"
require_known_peers

# ---------------------------------------------------------------------------
# Outer part: build, create the namespace, run the inner part inside it
# (bench_outer, in lib.sh).
# ---------------------------------------------------------------------------
if [[ -z "${ODBENCH_INNER:-}" ]]; then
    CMDLINE="DURATION=$DURATION ROUNDS=$ROUNDS PEERS='$PEERS' LAT_COUNT=$LAT_COUNT HOLD=$HOLD HOLD_SSLH=$HOLD_SSLH NETNS=$NETNS"
    [[ $SERVE_BIN == target/release/onedoor ]] || CMDLINE+=" SERVE_BIN=$SERVE_BIN"
    [[ $PORT_BASE == 10000 ]] || CMDLINE+=" PORT_BASE=$PORT_BASE"
    bench_outer serve odbench
fi

# ---------------------------------------------------------------------------
# Inner part: runs inside the namespace (or on the host with NETNS=0).
# ---------------------------------------------------------------------------
inner_setup 5
SSLH_LIMITED_PORT=$((PORT_BASE + 200))
DEAD=$LO:9 # backend of routes that must never match (nothing listens there)

# ---- which peers can run -------------------------------------------------
declare -A SKIP=()
missing=()
serve_ok=0
if [[ -x $SERVE_BIN ]] && "$SERVE_BIN" serve --help 2>/dev/null | grep -q -- '--anyprot'; then
    serve_ok=1
fi
need() { # need PEER COMMAND HINT
    if ! command -v "$2" >/dev/null; then
        SKIP[$1]="$2 not installed"
        missing+=("$2 ($3)")
    fi
}
need sslh-fork sslh "apt-get install sslh"
need sslh-select sslh-select "apt-get install sslh"
need haproxy haproxy "apt-get install haproxy"
need haproxy-splice haproxy "apt-get install haproxy"
need haproxy-splice-always haproxy "apt-get install haproxy"
need socat socat "apt-get install socat"
if [[ $serve_ok == 0 ]]; then
    SKIP[serve]="$SERVE_BIN has no working 'serve' yet"
    SKIP[serve-sniff]=${SKIP[serve]}
    missing+=("onedoor serve ($SERVE_BIN serve --help shows no --anyprot)")
fi
have_iperf=1
command -v iperf3 >/dev/null || { have_iperf=0; missing+=("iperf3 (apt-get install iperf3): no throughput figures"); }
if [[ ${#missing[@]} -gt 0 ]]; then
    log "missing, skipped: ${missing[*]}"
fi
ACTIVE=()
for p in $PEERS; do
    [[ -z ${SKIP[$p]:-} ]] && ACTIVE+=("$p")
done
log "peers: ${ACTIVE[*]}"

# ---- peers ----------------------------------------------------------------
SERVE_FLAGS=()
if [[ $serve_ok == 1 ]] && "$SERVE_BIN" serve --help 2>/dev/null | grep -q -- '--max-connections'; then
    SERVE_FLAGS+=(--max-connections $((HOLD + 1000)))
fi
declare -A FRONT=() FPID=()
# start_peer PEER SET(tput|lat) BACKEND_PORT: start the forwarder; sets
# FRONT[PEER/SET] and FPID[PEER/SET].
start_peer() {
    local peer=$1 set=$2 back=$3 idx front key cfg cmd=()
    idx=$(peer_index "$peer")
    key="$peer/$set"
    if [[ $peer == direct ]]; then
        FRONT[$key]=$back
        return 0
    fi
    if [[ $set == tput ]]; then front=$((PORT_BASE + 10 + idx)); else front=$((PORT_BASE + 110 + idx)); fi
    case "$peer/$set" in
        serve/tput) cmd=("$SERVE_BIN" serve -l "$LO:$front" "${SERVE_FLAGS[@]}" --anyprot "$LO:$back") ;;
        serve/lat) cmd=("$SERVE_BIN" serve -l "$LO:$front" "${SERVE_FLAGS[@]}" --http "$LO:$back") ;;
        serve-sniff/tput) cmd=("$SERVE_BIN" serve -l "$LO:$front" "${SERVE_FLAGS[@]}"
            --ssh "$DEAD" --tls "$DEAD" --http "$DEAD" --anyprot "$LO:$back") ;;
        serve-sniff/lat) cmd=("$SERVE_BIN" serve -l "$LO:$front" "${SERVE_FLAGS[@]}"
            --ssh "$DEAD" --tls "$DEAD" --http "$LO:$back" --anyprot "$DEAD") ;;
        # sslh's --http route, not --ssh: sslh forks a process per connection
        # for ssh by default, even sslh-select.
        sslh-fork/tput) cmd=(sslh -f -n -p "$LO:$front" --anyprot "$LO:$back") ;;
        sslh-fork/lat) cmd=(sslh -f -n -p "$LO:$front" --http "$LO:$back") ;;
        sslh-select/tput) cmd=(sslh-select -f -n -p "$LO:$front" --anyprot "$LO:$back") ;;
        sslh-select/lat) cmd=(sslh-select -f -n -p "$LO:$front" --http "$LO:$back") ;;
        haproxy*)
            cfg="$WORK/$peer-$set.cfg"
            case $peer in
                haproxy) haproxy_cfg "$cfg" "$front" "$back" no ;;
                haproxy-splice) haproxy_cfg "$cfg" "$front" "$back" auto ;;
                haproxy-splice-always) haproxy_cfg "$cfg" "$front" "$back" always ;;
            esac
            cmd=(haproxy -db -q -f "$cfg")
            ;;
        socat/*) cmd=(socat "TCP-LISTEN:$front,bind=$LO,fork,reuseaddr" "TCP:$LO:$back") ;;
    esac
    start "$peer-$set" "${cmd[@]}"
    printf '%s (%s): %s\n' "$peer" "$set" "${cmd[*]}" >>"$WORK/commands.txt"
    FRONT[$key]=$front
    FPID[$key]=$LAST_PID
    if ! wait_listen "$front" "$LAST_PID"; then
        log "$peer ($set) did not start; its log:"
        tail -5 "$WORK/$peer-$set.log" >&2 || true
        return 1
    fi
}

# shellcheck disable=SC2046 # the seq words are ports
require_free_ports "$IPERF_PORT" "$ECHO_PORT" "$SSLH_LIMITED_PORT" $(seq $((PORT_BASE + 10)) $((PORT_BASE + 19))) \
    $(seq $((PORT_BASE + 110)) $((PORT_BASE + 119)))

mark_start

# ---- 1. throughput --------------------------------------------------------
: >"$WORK/tput.tsv"
# iperf_run PEER TEST(1|P4) ROUND: iperf_once through PEER's tput front, the
# forwarder's CPU sampled; a line in tput.tsv.
iperf_run() {
    local peer=$1 test=$2 round=$3 key="$1/tput" pids=() popt=()
    [[ $peer == direct ]] || pids=("${FPID[$key]}")
    [[ $test == P4 ]] && popt=(-P 4)
    iperf_once "$peer" "$test" "$round" "${FRONT[$key]}" "${pids[@]}" -- "${popt[@]}"
    [[ -n $IPERF_JSON ]] || return 0
    if [[ -z $IPERF_GBPS || -z $IPERF_BYTES ]]; then
        log "  $peer $test: failed ${IPERF_ERR:-(no JSON; see $IPERF_JSON.err)}"
        printf '%s\t%s\t%s\tnan\tnan\tnan\n' "$round" "$peer" "$test" >>"$WORK/tput.tsv"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$peer" "$test" "$IPERF_GBPS" "$IPERF_BYTES" "$IPERF_CPU_MS" >>"$WORK/tput.tsv"
    log "  $(printf '%-15s %-3s %6.2f Gbit/s  cpu %s ms' "$peer" "$test" "$IPERF_GBPS" "$IPERF_CPU_MS")"
}

if [[ $have_iperf == 1 ]]; then
    for p in "${ACTIVE[@]}"; do
        start_peer "$p" tput "$IPERF_PORT" || { SKIP[$p]="failed to start"; }
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        log "throughput, round $r/$ROUNDS"
        for p in $(rotate $((r - 1))); do
            [[ -n ${SKIP[$p]:-} ]] && continue
            iperf_run "$p" 1 "$r"
            iperf_run "$p" P4 "$r"
        done
    done
    # The throughput forwarders are no longer needed.
    for p in "${ACTIVE[@]}"; do
        if [[ -n ${FPID[$p/tput]:-} ]]; then stop "${FPID[$p/tput]}"; fi
    done
fi

# ---- 2. new-connection latency ---------------------------------------------
: >"$WORK/lat.tsv"
start_echo_server
for p in "${ACTIVE[@]}"; do
    [[ -n ${SKIP[$p]:-} ]] && continue
    start_peer "$p" lat "$ECHO_PORT" || { SKIP[$p]="failed to start"; }
done
latency_rounds new-connection connections

# ---- 3. held connections --------------------------------------------------
: >"$WORK/hold.tsv"
# Each pair costs serve two fds; keep 64 for listeners, logs, the runtime.
if ! clamp_hold; then
    log "fd hard limit $FD_LIMIT: holding $HOLD_N, not $HOLD (serve needs 2 fds per pair)"
fi
# hold_run LABEL PORT PID COUNT FD_LIMIT_OF_PEER LOG_NAME_OF_PEER
hold_run() {
    local label=$1 port=$2 pid=$3 n=$4 lim=$5 before after gone=no
    before=$(rss_kib "$pid")
    hold_start "$label" "$port" "$n" 3s "$pid"
    after=$(rss_kib "$pid")
    hold_release "$label"
    local established=$HELD_ESTABLISHED alive=$HELD_ALIVE dropped=$HELD_DROPPED vfail=$HELD_VFAIL cpu_ms=$HELD_CPU_MS
    if ! kill -0 "$pid" 2>/dev/null; then
        local code=0
        wait "$pid" 2>/dev/null || code=$?
        forget "$pid"
        if [[ $code -gt 128 ]]; then gone="yes, SIG$(kill -l $((code - 128)))"; else gone="yes, exit $code"; fi
        after=—
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$lim" "$n" "${established:-0}" "${alive:-nan}" \
        "${dropped:-nan}" "${vfail:-nan}" "$before" "$after" "$cpu_ms" "$gone" >>"$WORK/hold.tsv"
    log "  $label: $n requested, ${established:-0} established, ${alive:-?} alive at release; RSS $before → $after KiB; exited: $gone"
    if [[ $gone != no ]]; then
        # shellcheck disable=SC2016 # backticks are markdown
        printf -- '- %s exited (%s); the last line of its log: `%s`\n' "$label" "${gone#yes, }" \
            "$(tail -1 "$WORK/$6.log" 2>/dev/null)" >>"$WORK/hold-notes.md"
        log "  $label exited; last line of its log: $(tail -1 "$WORK/$6.log" 2>/dev/null)"
    fi
}
if [[ -n ${FPID[serve/lat]:-} ]] && kill -0 "${FPID[serve/lat]}" 2>/dev/null; then
    log "held connections: $HOLD_N through serve"
    hold_run serve "${FRONT[serve/lat]}" "${FPID[serve/lat]}" "$HOLD_N" "$FD_LIMIT" serve-lat
fi
if [[ $HOLD_SSLH -gt 0 && -z ${SKIP[sslh-select]:-} && " $PEERS " == *" sslh-select "* ]]; then
    log "held connections: $HOLD_SSLH through sslh-select, fd soft limit 1024 (systemd's default)"
    start sslh-select-nofile1024 bash -c "ulimit -n 1024 && exec sslh-select -f -n -p $LO:$SSLH_LIMITED_PORT --http $LO:$ECHO_PORT"
    lim_pid=$LAST_PID
    if wait_listen "$SSLH_LIMITED_PORT" "$lim_pid"; then
        hold_run sslh-select-nofile1024 "$SSLH_LIMITED_PORT" "$lim_pid" "$HOLD_SSLH" 1024 sslh-select-nofile1024
    fi
    stop "$lim_pid"
    if [[ -n ${FPID[sslh-select/lat]:-} ]]; then
        log "held connections: $HOLD_SSLH through sslh-select, fd limit $FD_LIMIT"
        hold_run "sslh-select-nofile$FD_LIMIT" "${FRONT[sslh-select/lat]}" "${FPID[sslh-select/lat]}" "$HOLD_SSLH" "$FD_LIMIT" sslh-select-lat
    fi
fi

mark_end

# ---- report ---------------------------------------------------------------
# (tput_med, tput_best, cpu_per_gb_med, lat_med, fmt, ratio, verdict: lib.sh)
describe() {
    case $1 in
        direct) echo "no proxy" ;;
        serve) echo "onedoor serve, \`--anyprot\` (new conn: \`--http\`)" ;;
        serve-sniff) echo "onedoor serve, ssh, tls (and http) tried before the matching route" ;;
        sslh-fork) echo "sslh $(sslh -V 2>&1 | head -1 | awk '{ print $2 }'), \`--anyprot\` (new conn: \`--http\`)" ;;
        sslh-select) echo "sslh-select, \`--anyprot\` (new conn: \`--http\`)" ;;
        haproxy) echo "HAProxy $(haproxy -v 2>/dev/null | head -1 | awk '{ print $3 }'), mode tcp" ;;
        haproxy-splice) echo "HAProxy, mode tcp, \`option splice-auto\`" ;;
        haproxy-splice-always) echo "HAProxy, mode tcp, \`option splice-request\` + \`splice-response\`" ;;
        socat) echo "socat $(socat -V 2>/dev/null | awk '/socat version/ { print $3 }'), fork" ;;
    esac
}

D1=$(tput_med direct 1 4)
DP4=$(tput_med direct P4 4)
DLAT=$(lat_med direct 3)
declare -A HOLDKIB=()
while IFS=$'\t' read -r label _lim _n est alive _dr _vf before after _cpu _gone; do
    if isnum "$est" && isnum "$after" && [[ $est -gt 0 ]]; then
        HOLDKIB[$label]=$(awk -v b="$before" -v a="$after" -v n="$alive" -v e="$est" \
            'BEGIN { d = (n ~ /^[0-9]+$/ && n > 0) ? n : e; printf "%.1f", (a - b) / d }')
    fi
done <"$WORK/hold.tsv"

REV=$(onedoor_rev)
{
    report_head serve "onedoor $REV, "
    echo
    echo "Median of $ROUNDS rounds (in brackets: the best round; other load only ever lowers throughput); iperf3 \`-t $DURATION\` to \`iperf3 -s\`; new connections: $LAT_COUNT per peer per round" \
        "(connect, send \`$PAYLOAD\`, first echoed byte, close), medians of the per-round percentiles."
    echo
    echo "| peer | what | 1 stream Gbit/s (best) | × direct | -P4 Gbit/s | × direct | CPU s/GB (1 / -P4) | new conn p50 / p99 µs | KiB per held pair |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for p in $PEERS; do
        if [[ -n ${SKIP[$p]:-} ]]; then
            echo "| $p | skipped: ${SKIP[$p]} | | | | | | | |"
            continue
        fi
        row_medians "$p"
        hk=—
        [[ $p == serve && -n ${HOLDKIB[serve]:-} ]] && hk=${HOLDKIB[serve]}
        if [[ $p == sslh-select ]] && grep -q '^sslh-select' "$WORK/hold.tsv"; then hk="see below"; fi
        echo "| $p | $(describe "$p") | $(fmt %.2f "$ROW_G1") ($(fmt %.1f "$ROW_B1")) | $(ratio "$ROW_G1" "$D1") | $(fmt %.2f "$ROW_G4") | $(ratio "$ROW_G4" "$DP4")" \
            "| $(fmt %.2f "$ROW_C1") / $(fmt %.2f "$ROW_C4") | $(fmt %.0f "$ROW_L50") / $(fmt %.0f "$ROW_L99") | $hk |"
    done
    echo
    if [[ -s $WORK/hold.tsv ]]; then
        echo "Held connections (each sent its first line and got it echoed by the backend before counting as established):"
        echo
        echo "| peer | fd limit | requested | established | alive at release | dropped while held / failed the check | RSS before → after KiB | KiB per pair | CPU s while holding | process exited |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        while IFS=$'\t' read -r label lim n est alive dr vf before after cpu gone; do
            echo "| $label | $lim | $n | $est | $alive | $dr / $vf | $before → $after | ${HOLDKIB[$label]:-—} | $(fmt %.2f "$(awk -v c="$cpu" 'BEGIN { if (c ~ /^[0-9.]+$/) print c / 1000; else print "nan" }')") | $gone |"
        done <"$WORK/hold.tsv"
        echo
        if [[ -s $WORK/hold-notes.md ]]; then
            cat "$WORK/hold-notes.md"
            echo
        fi
    fi
    if [[ -z ${SKIP[serve]:-} && " $PEERS " == *" serve "* ]]; then
        S1=$(tput_med serve 1 4)
        SB=$(tput_best serve 1)
        SS1=$(tput_med serve-sniff 1 4)
        H1=$(tput_med haproxy-splice 1 4)
        HA1=$(tput_med haproxy-splice-always 1 4)
        X1=$(tput_med sslh-select 1 4)
        HB=$(tput_best haproxy-splice 1)
        HAB=$(tput_best haproxy-splice-always 1)
        XB=$(tput_best sslh-select 1)
        SLAT=$(lat_med serve 3)
        # sniffed REF: "serve-sniff 1.1×; " when serve-sniff ran.
        sniffed() { if isnum "$SS1"; then echo "serve-sniff $(ratio "$SS1" "$1"); "; fi; }
        echo "Targets (issue 2; verdicts on the medians):"
        echo
        echo "| target | measured | verdict |"
        echo "|---|---|---|"
        if isnum "$S1" && isnum "$H1"; then
            echo "| serve ≥ HAProxy \`splice-auto\`, 1 stream | $(ratio "$S1" "$H1") ($(sniffed "$H1")best vs best $(ratio "$SB" "$HB")) | $(verdict "$S1 >= $H1") |"
        else
            echo "| serve ≥ HAProxy with splice, 1 stream | not measured | — |"
        fi
        if isnum "$S1" && isnum "$HA1"; then
            echo "| serve ≥ HAProxy splicing always, 1 stream | $(ratio "$S1" "$HA1") ($(sniffed "$HA1")best vs best $(ratio "$SB" "$HAB")) | $(verdict "$S1 >= $HA1") |"
        fi
        if isnum "$S1" && isnum "$X1"; then
            echo "| serve ≥ 1.5× sslh-select, 1 stream | $(ratio "$S1" "$X1") ($(sniffed "$X1")best vs best $(ratio "$SB" "$XB")) | $(verdict "$S1 >= 1.5 * $X1") |"
        else
            echo "| serve ≥ 1.5× sslh-select, 1 stream | not measured | — |"
        fi
        if isnum "$SLAT" && isnum "$DLAT"; then
            echo "| new-connection p50 ≤ direct + 60 µs | $(awk -v s="$SLAT" -v d="$DLAT" 'BEGIN { printf "%+.0f µs (%.0f vs %.0f)", s - d, s, d }') | $(verdict "$SLAT <= $DLAT + 60") |"
        fi
        if [[ -n ${HOLDKIB[serve]:-} ]]; then
            salive=$(awk -F'\t' '$1 == "serve" { print $5 }' "$WORK/hold.tsv")
            sreq=$(awk -F'\t' '$1 == "serve" { print $3 }' "$WORK/hold.tsv")
            note=""
            if [[ $HOLD_N -lt $HOLD ]]; then
                note=" (not 10,000: the fd hard limit $FD_LIMIT leaves room for $HOLD_N pairs)"
            elif [[ $sreq -lt 10000 ]]; then
                note=" (HOLD=$HOLD)"
            fi
            echo "| 10,000 held, ≤ 8 KiB RSS per pair | $salive of $sreq alive, ${HOLDKIB[serve]} KiB per pair$note | $(verdict "$salive >= $sreq && ${HOLDKIB[serve]} <= 8") |"
        fi
        echo
    fi
    echo "<details><summary>Every run</summary>"
    echo
    echo "| round | peer | test | Gbit/s | GB moved | forwarder CPU s |"
    echo "|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "nan" ? "failed" : sprintf("%.2f", $4)), ($5 == "nan" ? "—" : sprintf("%.2f", $5 / 1e9)), ($6 == "nan" ? "—" : sprintf("%.2f", $6 / 1000)) }' "$WORK/tput.tsv"
    echo
    echo "| round | peer | p50 µs | p99 µs | errors | connections |"
    echo "|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %s | %s | %.0f | %.0f | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$WORK/lat.tsv"
    echo
    echo "Peers as started:"
    echo
    echo '```'
    cat "$WORK/commands.txt"
    echo '```'
    echo
    echo "</details>"
} >"$WORK/report.md"
log "done in $ELAPSED s"
