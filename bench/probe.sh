#!/usr/bin/env bash
# bench/probe.sh — `onedoor probe` of all 65,535 TCP doors side by side with
# `nmap -sT -Pn -T4 -p 1-65535`, through the lab's `web` firewall (80 and
# 443 let out, everything else silently dropped), in ONE run.
#
#   sudo bench/probe.sh            (from the repo root; about 2 minutes, nmap is most of it)
#   sudo ROUNDS=5 NMAP=0 bench/probe.sh
#   sudo PROBE_FLAGS='--timeout 1500ms --concurrency 512 --rate 2000/s' bench/probe.sh
#
# Setup: `onedoor lab --bare --policy web --keep` builds the house, the
# router and the internet (namespaces onedoor-*-INSTANCE, 198.18.0.0/15) with
# nothing running inside; `onedoor init` makes a throwaway identity in a
# temp dir; `onedoor serve --reflect tcp:1-65535` runs in the internet
# namespace (every door redirected to its reflector by an nftables rule it
# installs and removes itself). Then, from the house:
#   1. onedoor probe IP --fingerprint FP --tcp 1-65535 --udp none PROBE_FLAGS --json
#      ROUNDS times; each must find 80 and 443 open (verified by the
#      server's key) and the 65,533 others filtered.
#   2. nmap -sT -Pn -T4 -p 1-65535 IP, once (NMAP=1; apt-get installs nmap
#      if missing, else it is reported and skipped).
# Each under /usr/bin/time -v: wall seconds, doors/s, peak RSS (max RSS).
# Everything made is removed on exit (also on Ctrl-C): serve stopped, lab
# taken down, temp dir deleted.
#
# Knobs (environment variables; defaults in brackets):
#   PROBE_FLAGS  pacing of onedoor probe
#                    [--timeout 500ms --concurrency 16384 --rate 50000/s]
#   ROUNDS       onedoor probe runs                                   [3]
#   NMAP         1 = run nmap too, 0 = skip                           [1]
#   INSTANCE     lab instance (names onedoor-*-N, 198.1{8,9}.N.0/24)  [250]
#   BUILD        1 = cargo build --release -p onedoor                 [1]
#   BIN          the onedoor binary               [target/release/onedoor]
#   OUT_DIR      where the report and logs go (git-ignored)           [bench/out]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh source-path=SCRIPTDIR disable=SC1091
source "$ROOT/bench/lib.sh"

: "${PROBE_FLAGS:=--timeout 500ms --concurrency 16384 --rate 50000/s}"
: "${ROUNDS:=3}" "${NMAP:=1}" "${INSTANCE:=250}" "${BUILD:=1}"
: "${BIN:=target/release/onedoor}" "${OUT_DIR:=bench/out}"

if [[ $(id -u) != 0 ]]; then
    echo "bench/probe.sh needs root (it builds a lab: network namespaces and a firewall)." >&2
    exit 2
fi
for tool in ip /usr/bin/time python3 timeout; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
if [[ $BUILD == 1 ]]; then
    cargo build --release -p onedoor >&2
fi
BIN=$(readlink -f "$BIN")

STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT="$OUT_DIR/probe-$STAMP"
mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
REPORT="$OUT.md"

HOUSE=onedoor-house-$INSTANCE
INTERNET=onedoor-internet-$INSTANCE
IP=198.19.$INSTANCE.2
STATE=$(mktemp -d /tmp/onedoor-bench-probe.XXXXXX)
LAB_PID=""
SERVE_PID=""

cleanup() {
    set +e
    if [[ -n $SERVE_PID ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
        kill -TERM "$SERVE_PID"
        timeout 5 tail --pid="$SERVE_PID" -f /dev/null || kill -KILL "$SERVE_PID"
    fi
    if [[ -n $LAB_PID ]] && kill -0 "$LAB_PID" 2>/dev/null; then
        kill -TERM "$LAB_PID"
        timeout 10 tail --pid="$LAB_PID" -f /dev/null || kill -KILL "$LAB_PID"
    fi
    wait 2>/dev/null
    rm -rf "$STATE"
    if ip netns list | grep -q -- "-$INSTANCE\b"; then
        "$BIN" lab --clean >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait (bounded; lib.sh's wait_for, which also stops waiting when PID has
# exited) until FILE contains TEXT, else say so and exit.
wait_or_exit() { # FILE TEXT SECONDS WHAT PID
    wait_for "$1" "$2" "$3" "$5" && return 0
    echo "$4 did not happen within $3 s; see $1" >&2
    exit 1
}

echo "== building the lab (policy web, instance $INSTANCE)" >&2
"$BIN" lab --bare --policy web --instance "$INSTANCE" >"$OUT/lab.log" 2>&1 &
LAB_PID=$!
wait_or_exit "$OUT/lab.log" "The lab stays up" 20 "the lab" "$LAB_PID"

echo "== onedoor init and serve --reflect tcp:1-65535 in $INTERNET" >&2
"$BIN" init --state-dir "$STATE/id" --name "$IP" >"$STATE/key" 2>"$OUT/init.log"
FP=$(sed -n 's/.*[?&]fp=\([^&]*\).*/\1/p' "$STATE/key")
[[ -n $FP ]] || { echo "no fingerprint in the access key" >&2; exit 1; }
ip netns exec "$INTERNET" "$BIN" serve -l "$IP:443" --state-dir "$STATE/id" \
    --reflect 'tcp:1-65535' --drain-timeout 100ms >"$OUT/serve.log" 2>&1 &
SERVE_PID=$!
wait_or_exit "$OUT/serve.log" "answering probe hellos" 20 "serve --reflect" "$SERVE_PID"

# Fields of a `/usr/bin/time -v` file: wall seconds and max RSS (KiB).
time_fields() {
    python3 - "$1" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
w = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
wall = int(w.group(1) or 0) * 3600 + int(w.group(2)) * 60 + float(w.group(3))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
print(f"{wall:.2f} {rss}")
EOF
}

ROWS=()
ALL_OK=1
for ((r = 1; r <= ROUNDS; r++)); do
    echo "== onedoor probe, round $r/$ROUNDS: $PROBE_FLAGS" >&2
    # shellcheck disable=SC2086
    ip netns exec "$HOUSE" /usr/bin/time -v -o "$OUT/probe-$r.time" \
        "$BIN" probe "$IP" --fingerprint "$FP" --tcp 1-65535 --udp none $PROBE_FLAGS --json \
        >"$OUT/probe-$r.json" 2>"$OUT/probe-$r.err" || true
    read -r WALL RSS < <(time_fields "$OUT/probe-$r.time")
    VERDICT=$(python3 - "$OUT/probe-$r.json" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"FAIL no map ({e})"); sys.exit()
t = j["tcp"]
ok = (t["open"]["ports"] == "80,443"
      and all(g["code"] == "verified" for g in t["open"]["reasons"])
      and t["filtered"]["count"] == 65533)
others = ", ".join(f"{s} {t[s]['count']}" for s in ("intercepted", "rejected")
                   if t[s]["count"])
print(("OK" if ok else "FAIL"),
      f"open {t['open']['ports'] or 'none'} (verified), filtered {t['filtered']['count']}"
      + (f", {others}" if others else ""))
EOF
)
    [[ $VERDICT == OK* ]] || ALL_OK=0
    RATE=$(python3 -c "print(f'{65535/$WALL:,.0f}')")
    ROWS+=("| onedoor probe (round $r) | $WALL | $RATE | $((RSS / 1024)) | ${VERDICT#* } |")
    echo "   $WALL s, $RATE doors/s, max RSS $((RSS / 1024)) MiB: $VERDICT" >&2
done

if [[ $NMAP == 1 ]] && ! command -v nmap >/dev/null; then
    echo "== nmap is not installed: apt-get install -y nmap" >&2
    apt-get install -y nmap >"$OUT/apt.log" 2>&1 || true
fi
if [[ $NMAP == 1 ]] && command -v nmap >/dev/null; then
    echo "== nmap -sT -Pn -T4 -p 1-65535 $IP (about 1.5 minutes)" >&2
    ip netns exec "$HOUSE" /usr/bin/time -v -o "$OUT/nmap.time" \
        nmap -sT -Pn -T4 -p 1-65535 -oX "$OUT/nmap.xml" "$IP" >"$OUT/nmap.txt" 2>&1 || true
    read -r WALL RSS < <(time_fields "$OUT/nmap.time")
    SAID=$(python3 - "$OUT/nmap.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
from collections import Counter
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print(f"no result ({e})"); sys.exit()
named = {}
for p in root.iter("port"):
    named[int(p.get("portid"))] = p.find("state").get("state")
extra = Counter()
for e in root.iter("extraports"):
    extra[e.get("state")] += int(e.get("count"))
said = ", ".join(f"{p}: {named.get(p, 'filtered (not listed)')}" for p in (80, 443))
rest = ", ".join(f"{n} {s}" for s, n in extra.items())
print(f"{said}; the rest: {rest or 'listed one by one'}")
EOF
)
    RATE=$(python3 -c "print(f'{65535/$WALL:,.0f}')")
    ROWS+=("| nmap -sT -Pn -T4 | $WALL | $RATE | $((RSS / 1024)) | $SAID |")
    echo "   $WALL s, $RATE ports/s, max RSS $((RSS / 1024)) MiB: $SAID" >&2
elif [[ $NMAP == 1 ]]; then
    ROWS+=("| nmap -sT -Pn -T4 | – | – | – | not available here (apt-get install nmap failed) |")
fi

{
    echo "# bench/probe.sh — $STAMP"
    echo
    echo "All 65,535 TCP doors of $IP from the lab's house, through the \`web\` policy"
    echo "(80 and 443 let out, the rest silently dropped), $(nproc) cores, $(uname -r)."
    echo
    echo "- onedoor: \`onedoor probe $IP --fingerprint SHA256:… --tcp 1-65535 --udp none $PROBE_FLAGS --json\`"
    echo "  against \`onedoor serve -l $IP:443 --reflect tcp:1-65535\` (nftables redirect)"
    echo "- nmap $(nmap --version 2>/dev/null | head -1 | awk '{print $3}'): \`nmap -sT -Pn -T4 -p 1-65535 $IP\`, same server"
    echo
    echo "| tool | wall s | ports/s | peak RSS MiB | verdict |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
cat "$REPORT"
echo "Report: $REPORT; logs in $OUT" >&2
[[ $ALL_OK == 1 ]]
