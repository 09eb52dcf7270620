#!/usr/bin/env bash
# bench/tunnel.sh — `onedoor connect -L` through `onedoor serve --tunnel`
# side by side with what users would run instead (ssh -L, wstunnel over wss
# and ws, rathole) and with no tunnel at all ("direct"), in ONE run, measured
# the same way.
#
#   sudo bench/tunnel.sh                                   (from the repo root)
#   sudo WSTUNNEL=/work/ext/wstunnel/target/release/wstunnel \
#        RATHOLE=/work/ext/rathole/bin/rathole bench/tunnel.sh
#
# Every tool forwards a local port to a backend on loopback: its client
# listens, its server connects to the backend. What it measures (all on
# loopback, in a private network namespace when root):
#   1. TCP throughput: iperf3 -t DURATION -J, one stream and -P4, through
#      each tool's local port to `iperf3 -s`; Gbit/s and the ratio to direct.
#      CPU seconds per GB moved: utime+stime of the tool's client AND server
#      process trees (sshd's per-connection children included), sampled from
#      /proc every 100 ms by one `onedoor-bench cputree CLIENT SERVER`,
#      divided by the bytes iperf3 received.
#   2. UDP: iperf3 -u -b UDP_RATE -l UDP_LEN through each tool that forwards
#      UDP (onedoor `-L udp/`, wstunnel `udp://`, rathole `type = "udp"`);
#      the Gbit/s the server received and the datagrams it lost. iperf3's
#      control connection goes over the same tool's TCP forward on the same
#      port number.
#   3. New-stream latency through a live session: `onedoor-bench connlat`
#      (connect, send PAYLOAD, first echoed byte, close; one at a time)
#      through each tool's local port to `onedoor-bench echo-server`; p50/p99
#      in µs. The session (ssh's, onedoor's; wstunnel's and rathole's control
#      connection) is up and warm before the first sample. wstunnel and
#      rathole open a new TCP (and TLS) connection to their server for every
#      stream: that is their design and it is measured as such.
#   4. Held connections: HOLD (1000) concurrent connections through each tool,
#      each echoed once; VmRSS of the client's and the server's process trees
#      before and after; (delta client + delta server) / HOLD in KiB.
# Every tool runs once per round, in an order rotated each round; tables show
# the median over rounds (the raw runs are listed below them). The machine
# is shared and noisy: read the ratios, which are taken within one run.
#
# Knobs (environment variables; defaults in brackets):
#   DURATION   seconds per iperf3 run                                   [5]
#   ROUNDS     rounds over all peers                                    [3]
#   PEERS      subset/order of: direct onedoor onedoor-wss onedoor-ws ssh
#              wstunnel-wss wstunnel-ws rathole onedoor-b
#              [all but onedoor-b]. onedoor-wss / onedoor-ws: the same
#              connect and serve over `--transport wss` (the outer TLS is
#              serve's own, verified: one layer) and `--transport ws`
#              (plain HTTP outside, the session in the inner TLS layer).
#              onedoor-nginx / wstunnel-nginx: behind nginx terminating TLS
#              with its own certificate (the README's set-up): onedoor's
#              session then runs in the inner layer (two layers), wstunnel's
#              does not verify nginx and has one
#              haproxy-pair: two HAProxy processes in TCP mode, chained
#              as a tunnel's two ends are (front → one → the other →
#              backend), with no encryption and no session: what any two
#              relaying processes cost here, the floor for new streams
#   ONEDOOR_B_BIN  onedoor-b: a second onedoor, side by side with the first
#              (an A/B of two builds, or of one build in two settings)
#                                                      [$ONEDOOR_BIN]
#   ONEDOOR_B_ENV  onedoor-b: environment for its client and server, as
#              NAME=VALUE words (e.g. TOKIO_WORKER_THREADS=1)           []
#   WSTUNNEL   wstunnel binary (built from its source, outside this repo);
#              unset or missing: its two peers are skipped              []
#   RATHOLE    rathole binary (`cargo install rathole --root DIR`, outside
#              this repo); unset or missing: skipped                    []
#   LAT_COUNT  connlat connections per peer per round                   [2000]
#   PAYLOAD    first bytes of connlat/hold connections (\r \n escapes)
#                                    [GET / HTTP/1.1\r\nHost: bench\r\n\r\n]
#   HOLD       connections held through each tool                       [1000]
#   UDP_RATE   iperf3 -b for the UDP runs                               [1G]
#   UDP_LEN    iperf3 -l (datagram size) for the UDP runs; empty = iperf3's
#              own default (32 KiB on loopback)                         [1400]
#   NETNS      1 = private network namespace (needs root), 0 = host lo  [1 if root]
#   PORT_BASE  first port used                                          [12000]
#   BUILD      1 = cargo build --release -p onedoor -p onedoor-bench    [1]
#   ONEDOOR_BIN  the onedoor binary                [target/release/onedoor]
#   OUT_DIR    where the report and logs go (git-ignored)               [bench/out]
#
# Needs: iperf3 jq iproute2 (ss, ip) procps (ps); openssh-server and
# openssh-client for the ssh peer. A missing peer is reported and skipped.
# Nothing leaves loopback: every server here listens on 127.0.0.1 only and
# is allowed to reach only this run's two backends.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh source-path=SCRIPTDIR disable=SC1091
source "$ROOT/bench/lib.sh"

: "${DURATION:=5}" "${ROUNDS:=3}" "${LAT_COUNT:=2000}" "${HOLD:=1000}"
: "${PAYLOAD:=GET / HTTP/1.1\r\nHost: bench\r\n\r\n}"
: "${UDP_RATE:=1G}"
UDP_LEN=${UDP_LEN-1400}
: "${WSTUNNEL:=}" "${RATHOLE:=}"
: "${PORT_BASE:=12000}" "${BUILD:=1}" "${ONEDOOR_BIN:=target/release/onedoor}" "${OUT_DIR:=bench/out}"
# shellcheck disable=SC2034 # read by lib.sh (require_known_peers, peer_index)
ALL_PEERS="direct onedoor onedoor-wss onedoor-ws onedoor-nginx ssh wstunnel-wss wstunnel-ws wstunnel-nginx rathole haproxy-pair onedoor-b"
: "${PEERS:=direct onedoor ssh wstunnel-wss wstunnel-ws rathole}"
: "${ONEDOOR_B_BIN:=$ONEDOOR_BIN}" "${ONEDOOR_B_ENV:=}"
NETNS=${NETNS:-$(default_netns)}
export ONEDOOR_B_BIN ONEDOOR_B_ENV PAYLOAD DURATION ROUNDS LAT_COUNT HOLD UDP_RATE UDP_LEN WSTUNNEL RATHOLE PORT_BASE BUILD ONEDOOR_BIN OUT_DIR PEERS NETNS

require_whole DURATION ROUNDS LAT_COUNT HOLD PORT_BASE
[[ $DURATION -ge 1 && $ROUNDS -ge 1 && $HOLD -ge 1 ]] || die "DURATION, ROUNDS and HOLD must be at least 1"
[[ -z $UDP_LEN || $UDP_LEN =~ ^[0-9]+$ ]] || die "UDP_LEN must be a whole number or empty, not '$UDP_LEN'"
[[ $UDP_RATE =~ ^[0-9.]+[KMG]?$ ]] || die "UDP_RATE must look like 1G, 500M, not '$UDP_RATE'"
require_known_peers
# Binaries given relative to where the script was started resolve from the
# repo root (we cd'ed there); make them absolute for the inner part.
for v in WSTUNNEL RATHOLE; do
    if [[ -n ${!v} && ${!v} != /* && -e ${!v} ]]; then
        printf -v "$v" '%s' "$(cd "$(dirname "${!v}")" && pwd)/$(basename "${!v}")"
        export "${v?}"
    fi
done

# ---------------------------------------------------------------------------
# Outer part: build, create the namespace, run the inner part inside it
# (bench_outer, in lib.sh).
# ---------------------------------------------------------------------------
if [[ -z "${ODBENCH_INNER:-}" ]]; then
    CMDLINE="DURATION=$DURATION ROUNDS=$ROUNDS PEERS='$PEERS' LAT_COUNT=$LAT_COUNT HOLD=$HOLD UDP_RATE=$UDP_RATE UDP_LEN='$UDP_LEN' NETNS=$NETNS"
    [[ -z $WSTUNNEL ]] || CMDLINE+=" WSTUNNEL=$WSTUNNEL"
    [[ -z $RATHOLE ]] || CMDLINE+=" RATHOLE=$RATHOLE"
    [[ $ONEDOOR_BIN == target/release/onedoor ]] || CMDLINE+=" ONEDOOR_BIN=$ONEDOOR_BIN"
    [[ $PORT_BASE == 12000 ]] || CMDLINE+=" PORT_BASE=$PORT_BASE"
    [[ $ONEDOOR_B_BIN == "$ONEDOOR_BIN" ]] || CMDLINE+=" ONEDOOR_B_BIN=$ONEDOOR_B_BIN"
    [[ -z $ONEDOOR_B_ENV ]] || CMDLINE+=" ONEDOOR_B_ENV='$ONEDOOR_B_ENV'"
    bench_outer tunnel odtunnel
fi

# ---------------------------------------------------------------------------
# Inner part: runs inside the namespace (or on the host with NETNS=0).
# ---------------------------------------------------------------------------
inner_setup 10

# ---- which peers can run -------------------------------------------------
declare -A SKIP=()
missing=()
SSHD=$(command -v sshd || true)
[[ -n $SSHD ]] || for d in /usr/sbin /sbin /usr/local/sbin; do
    [[ -x $d/sshd ]] && SSHD=$d/sshd && break
done
if [[ ! -x $ONEDOOR_BIN ]] || ! "$ONEDOOR_BIN" serve --help 2>/dev/null | grep -q -- '--tunnel'; then
    SKIP[onedoor]="$ONEDOOR_BIN has no 'serve --tunnel'"
    missing+=("onedoor (${SKIP[onedoor]})")
fi
if [[ " $PEERS " == *" onedoor-b "* ]] &&
    { [[ ! -x $ONEDOOR_B_BIN ]] || ! "$ONEDOOR_B_BIN" serve --help 2>/dev/null | grep -q -- '--tunnel'; }; then
    SKIP[onedoor-b]="$ONEDOOR_B_BIN has no 'serve --tunnel'"
    missing+=("onedoor-b (${SKIP[onedoor-b]})")
fi
if [[ -z $SSHD ]] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    SKIP[ssh]="OpenSSH (ssh, sshd, ssh-keygen) not installed"
    missing+=("ssh (apt-get install openssh-server openssh-client)")
fi
if [[ -z $WSTUNNEL ]]; then
    SKIP[wstunnel-wss]="WSTUNNEL not set"
elif [[ ! -x $WSTUNNEL ]]; then
    SKIP[wstunnel-wss]="WSTUNNEL=$WSTUNNEL is not an executable"
fi
if [[ -n ${SKIP[wstunnel-wss]:-} ]]; then
    SKIP[wstunnel-ws]=${SKIP[wstunnel-wss]}
    SKIP[wstunnel-nginx]=${SKIP[wstunnel-wss]}
    missing+=("wstunnel (${SKIP[wstunnel-wss]}; build it from its source outside this repo, then WSTUNNEL=/path/to/wstunnel)")
fi
HAPROXY=$(command -v haproxy || true)
[[ -n $HAPROXY ]] || for d in /usr/sbin /sbin /usr/local/sbin; do
    [[ -x $d/haproxy ]] && HAPROXY=$d/haproxy && break
done
if [[ -z $HAPROXY ]]; then
    SKIP[haproxy-pair]="HAProxy not installed"
    [[ " $PEERS " == *" haproxy-pair "* ]] && missing+=("haproxy-pair (apt-get install haproxy)")
fi
if [[ -z $RATHOLE ]]; then
    SKIP[rathole]="RATHOLE not set"
elif [[ ! -x $RATHOLE ]]; then
    SKIP[rathole]="RATHOLE=$RATHOLE is not an executable"
fi
if [[ -n ${SKIP[rathole]:-} ]]; then
    missing+=("rathole (${SKIP[rathole]}; cargo install rathole --root DIR, then RATHOLE=DIR/bin/rathole)")
fi
command -v iperf3 >/dev/null || die "iperf3 is missing (apt-get install iperf3)"
if [[ ${#missing[@]} -gt 0 ]]; then
    for m in "${missing[@]}"; do log "skipped: $m"; done
fi
ACTIVE=()
for p in $PEERS; do
    [[ -z ${SKIP[$p]:-} ]] && ACTIVE+=("$p")
done
log "peers: ${ACTIVE[*]}"
udp_capable() { [[ $1 == direct || $1 == onedoor* || $1 == wstunnel-* || $1 == rathole ]]; }

# Versions, for the report.
declare -A VERSION=()
VERSION[onedoor]="onedoor $(onedoor_rev)"
VERSION[onedoor-b]="onedoor-b ($ONEDOOR_B_BIN$([[ -z $ONEDOOR_B_ENV ]] || echo ", env $ONEDOOR_B_ENV"))"
if [[ -z ${SKIP[ssh]:-} ]]; then
    VERSION[ssh]="$(ssh -V 2>&1 | cut -d, -f1)"
fi
if [[ -z ${SKIP[wstunnel-wss]:-} ]]; then
    VERSION[wstunnel-wss]="$("$WSTUNNEL" --version 2>/dev/null | head -1)"
    VERSION[wstunnel-ws]=${VERSION[wstunnel-wss]}
    VERSION[wstunnel-nginx]=${VERSION[wstunnel-wss]}
fi
if [[ -z ${SKIP[haproxy-pair]:-} ]]; then
    VERSION[haproxy-pair]="$("$HAPROXY" -v 2>/dev/null | head -1 | awk '{ print $1, $3 }')"
fi
if [[ -z ${SKIP[rathole]:-} ]]; then
    # rathole 0.5 prints a build table; its version is on "Build Version:".
    VERSION[rathole]="rathole $("$RATHOLE" --version 2>/dev/null | awk '/Build Version/ { print $3; exit }')"
fi

# ---- peers ----------------------------------------------------------------
# The ssh peer's keys, made once.
SSH_DIR=$WORK/ssh
ssh_keys() {
    [[ -f $SSH_DIR/user_key ]] && return 0
    mkdir -p "$SSH_DIR"
    chmod 700 "$SSH_DIR"
    ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key" -C bench-host
    ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/user_key" -C bench-user
    cp "$SSH_DIR/user_key.pub" "$SSH_DIR/authorized_keys"
    # sshd refuses to start as root without its privilege separation dir.
    if [[ $(id -u) == 0 ]]; then mkdir -p /run/sshd; fi
}
# No LogLevel here: ssh keeps the first value it gets, and the cipher probe
# below needs DEBUG1.
SSH_BASE=(-F /dev/null -i "$SSH_DIR/user_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o ConnectTimeout=5)
SSH_OPTS=("${SSH_BASE[@]}" -o LogLevel=ERROR)
SSH_USER=$(id -un)
random_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

declare -A FRONT=() CPID=() SPID=()
# nginx_front DIR DOOR BEHIND: an nginx config in DIR terminating TLS on
# DOOR with a self-signed certificate of its own (made once) and passing
# everything, WebSocket upgrades included, to BEHIND over plain HTTP, as
# the README's reverse-proxy set-up does.
nginx_front() {
    local d=$1 door=$2 behind=$3
    [[ -n $NGINX ]] || { log "nginx is not installed (apt-get install nginx)"; return 1; }
    if [[ ! -f $WORK/front.crt ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=front.example -keyout "$WORK/front.key" -out "$WORK/front.crt" >/dev/null 2>&1 ||
            { log "openssl could not make nginx's certificate"; return 1; }
    fi
    mkdir -p "$d/nginx"
    cat >"$d/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/nginx/body;
    proxy_temp_path $d/nginx/proxy;
    fastcgi_temp_path $d/nginx/fastcgi;
    uwsgi_temp_path $d/nginx/uwsgi;
    scgi_temp_path $d/nginx/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    server {
        listen $LO:$door ssl;
        ssl_certificate $WORK/front.crt;
        ssl_certificate_key $WORK/front.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://$LO:$behind;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_read_timeout 1h;
            proxy_buffering off;
        }
    }
}
CONF
}
# behind_then_nginx DIR BEHIND: the shell words that wait for the server
# behind nginx to listen on BEHIND, then become nginx (so the server is a
# child of the process whose tree is measured).
behind_then_nginx() {
    # shellcheck disable=SC2016 # $(seq) runs in the child shell
    printf 'for _ in $(seq 100); do (exec 3<>/dev/tcp/%s/%s) 2>/dev/null && break; sleep 0.05; done; exec %q -p %q -c %q -e stderr' \
        "$LO" "$2" "$NGINX" "$1/nginx/" "$1/nginx/nginx.conf"
}
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] || for x in /usr/sbin/nginx /sbin/nginx; do [[ -x $x ]] && NGINX=$x && break; done

# start_peer PEER SET(tput|lat) BACKEND_PORT: start the tool's server and
# client; its client listens on FRONT[PEER/SET] (TCP; and UDP on the same
# port number for the tput set of a UDP-capable tool) and forwards to
# BACKEND_PORT. Sets CPID/SPID[PEER/SET].
start_peer() {
    local peer=$1 set=$2 back=$3 idx front door key d cfg scmd=() ccmd=() udp=0 shown
    idx=$(peer_index "$peer")
    key="$peer/$set"
    if [[ $peer == direct ]]; then
        FRONT[$key]=$back
        return 0
    fi
    if [[ $set == tput ]]; then
        front=$((PORT_BASE + 10 + idx)) door=$((PORT_BASE + 30 + idx))
        udp_capable "$peer" && udp=1
    else
        front=$((PORT_BASE + 110 + idx)) door=$((PORT_BASE + 130 + idx))
    fi
    d="$WORK/$peer-$set"
    mkdir -p "$d"
    case $peer in
        onedoor | onedoor-b | onedoor-wss | onedoor-ws)
            local bin=$ONEDOOR_BIN envw=() tr=()
            [[ $peer == onedoor-ws* ]] && tr=(--transport "${peer#onedoor-}")
            if [[ $peer == onedoor-b ]]; then
                bin=$ONEDOOR_B_BIN
                # shellcheck disable=SC2206 # NAME=VALUE words, split on purpose
                envw=(env $ONEDOOR_B_ENV)
            fi
            "$bin" init --state-dir "$d/state" --name "$LO" --port "$door" >"$d/key" 2>"$d/init.log" ||
                { log "$peer init failed: $(tail -3 "$d/init.log")"; return 1; }
            scmd=("${envw[@]}" "$bin" serve -l "$LO:$door" --state-dir "$d/state" --tunnel)
            ccmd=("${envw[@]}" "$bin" connect "$(cat "$d/key")" "${tr[@]}" -L "$LO:$front:$LO:$back")
            [[ $udp == 1 ]] && ccmd+=(-L "udp/$LO:$front:$LO:$back")
            ;;
        ssh)
            ssh_keys
            cfg="$d/sshd_config"
            {
                echo "Port $door"
                echo "ListenAddress $LO"
                echo "HostKey $SSH_DIR/host_key"
                echo "AuthorizedKeysFile $SSH_DIR/authorized_keys"
                echo "PidFile none"
                echo "StrictModes no"
                echo "UsePAM no"
                echo "PasswordAuthentication no"
                echo "KbdInteractiveAuthentication no"
                echo "PubkeyAuthentication yes"
                echo "PermitRootLogin yes"
                echo "AllowTcpForwarding local"
                echo "PermitOpen $LO:$back"
                echo "UseDNS no"
                echo "LogLevel ERROR"
            } >"$cfg"
            scmd=("$SSHD" -D -e -f "$cfg")
            ccmd=(ssh "${SSH_OPTS[@]}" -p "$door" -N -o ExitOnForwardFailure=yes -L "$LO:$front:$LO:$back" "$SSH_USER@$LO")
            ;;
        onedoor-nginx)
            "$ONEDOOR_BIN" init --state-dir "$d/state" --name "$LO" --port "$door" >"$d/key" 2>"$d/init.log" ||
                { log "$peer init failed: $(tail -3 "$d/init.log")"; return 1; }
            nginx_front "$d" "$door" $((door + 50)) || return 1
            scmd=(bash -c "$(printf '%q ' "$ONEDOOR_BIN" serve -l "$LO:$((door + 50))" --state-dir "$d/state" --tunnel) &
                $(behind_then_nginx "$d" $((door + 50)))")
            ccmd=("$ONEDOOR_BIN" connect "$(cat "$d/key")" --transport wss -L "$LO:$front:$LO:$back")
            [[ $udp == 1 ]] && ccmd+=(-L "udp/$LO:$front:$LO:$back")
            ;;
        wstunnel-nginx)
            nginx_front "$d" "$door" $((door + 50)) || return 1
            scmd=(bash -c "$(printf '%q ' "$WSTUNNEL" server --log-lvl WARN --restrict-to "$LO:$back" "ws://$LO:$((door + 50))") &
                $(behind_then_nginx "$d" $((door + 50)))")
            ccmd=("$WSTUNNEL" client --log-lvl WARN -L "tcp://$LO:$front:$LO:$back")
            [[ $udp == 1 ]] && ccmd+=(-L "udp://$LO:$front:$LO:$back?timeout_sec=0")
            ccmd+=("wss://$LO:$door")
            ;;
        wstunnel-wss | wstunnel-ws)
            local scheme=${peer#wstunnel-}
            scmd=("$WSTUNNEL" server --log-lvl WARN --restrict-to "$LO:$back" "$scheme://$LO:$door")
            ccmd=("$WSTUNNEL" client --log-lvl WARN -L "tcp://$LO:$front:$LO:$back")
            [[ $udp == 1 ]] && ccmd+=(-L "udp://$LO:$front:$LO:$back?timeout_sec=0")
            ccmd+=("$scheme://$LO:$door")
            ;;
        haproxy-pair)
            # One config per end: the server end relays the door to the
            # backend, the client end the front to the door.
            haproxy_cfg "$d/server.cfg" "$door" "$back" no
            haproxy_cfg "$d/client.cfg" "$front" "$door" no
            scmd=("$HAPROXY" -db -f "$d/server.cfg")
            ccmd=("$HAPROXY" -db -f "$d/client.cfg")
            ;;
        rathole)
            local tok
            tok=$(random_token)
            {
                echo "[server]"
                echo "bind_addr = \"$LO:$door\""
                echo "[server.services.tcp]"
                echo "token = \"$tok\""
                echo "bind_addr = \"$LO:$front\""
                if [[ $udp == 1 ]]; then
                    echo "[server.services.udp]"
                    echo "type = \"udp\""
                    echo "token = \"$tok\""
                    echo "bind_addr = \"$LO:$front\""
                fi
            } >"$d/server.toml"
            {
                echo "[client]"
                echo "remote_addr = \"$LO:$door\""
                echo "[client.services.tcp]"
                echo "token = \"$tok\""
                echo "local_addr = \"$LO:$back\""
                if [[ $udp == 1 ]]; then
                    echo "[client.services.udp]"
                    echo "type = \"udp\""
                    echo "token = \"$tok\""
                    echo "local_addr = \"$LO:$back\""
                fi
            } >"$d/client.toml"
            # rathole is a reverse tunnel: its *server* listens on the front
            # port and its client connects to the backend. Warnings only, as
            # for wstunnel (their INFO logs a line per connection).
            scmd=(env RUST_LOG=warn "$RATHOLE" --server "$d/server.toml")
            ccmd=(env RUST_LOG=warn "$RATHOLE" --client "$d/client.toml")
            ;;
    esac
    start "$peer-$set-server" "${scmd[@]}"
    SPID[$key]=$LAST_PID
    if ! wait_listen "$door" "$LAST_PID"; then
        log "$peer ($set): its server did not start; its log:"
        tail -5 "$WORK/$peer-$set-server.log" >&2 || true
        return 1
    fi
    start "$peer-$set-client" "${ccmd[@]}"
    CPID[$key]=$LAST_PID
    FRONT[$key]=$front
    # The access key holds a token: never in the report.
    shown="${scmd[*]}  ⟷  ${ccmd[*]}"
    [[ $peer == onedoor* ]] && shown=${shown//$(cat "$d/key")/KEY}
    printf '%s (%s): %s\n' "$peer" "$set" "$shown" >>"$WORK/commands.txt"
    if ! wait_listen "$front" "${SPID[$key]}" "${CPID[$key]}" ||
        { [[ $udp == 1 ]] && ! wait_listen "$front" "${SPID[$key]}" "${CPID[$key]}" udp; }; then
        log "$peer ($set): the forward did not come up; its logs:"
        tail -5 "$WORK/$peer-$set-server.log" "$WORK/$peer-$set-client.log" >&2 || true
        return 1
    fi
    if [[ $peer == onedoor* ]]; then
        # Its listeners open once the session is up; make sure it is.
        wait_for "$WORK/$peer-$set-client.log" 'tunnel session up' 10 "${CPID[$key]}" ||
            { log "onedoor ($set): no session"; return 1; }
    fi
}
stop_peer() {
    local key="$1/$2"
    if [[ -n ${CPID[$key]:-} ]]; then stop "${CPID[$key]}"; fi
    if [[ -n ${SPID[$key]:-} ]]; then stop "${SPID[$key]}"; fi
}

# shellcheck disable=SC2046 # the seq words are ports
require_free_ports "$IPERF_PORT" "$ECHO_PORT" $(seq $((PORT_BASE + 10)) $((PORT_BASE + 39))) \
    $(seq $((PORT_BASE + 110)) $((PORT_BASE + 139)))

mark_start

# ---- 1. throughput, TCP and UDP -------------------------------------------
: >"$WORK/tput.tsv"
# iperf_run PEER TEST(1|P4|udp) ROUND: iperf_once through PEER's tput front,
# the client's and server's CPU sampled; a line in tput.tsv.
iperf_run() {
    local peer=$1 test=$2 round=$3 key="$1/tput" pids=() opt=() gbps bytes cpu_ms lost
    [[ $peer == direct ]] || pids=("${CPID[$key]}" "${SPID[$key]}")
    case $test in
        P4) opt=(-P 4) ;;
        udp)
            opt=(-u -b "$UDP_RATE")
            [[ -n $UDP_LEN ]] && opt+=(-l "$UDP_LEN")
            ;;
    esac
    iperf_once "$peer" "$test" "$round" "${FRONT[$key]}" "${pids[@]}" -- "${opt[@]}"
    [[ -n $IPERF_JSON ]] || return 0
    gbps=$IPERF_GBPS bytes=$IPERF_BYTES cpu_ms=$IPERF_CPU_MS
    lost=$(jq -r '.end.sum_received.lost_percent // "nan"' "$IPERF_JSON" 2>/dev/null || echo nan)
    [[ $test == udp ]] || lost=nan
    if [[ -z $gbps || -z $bytes ]]; then
        log "  $peer $test: failed ${IPERF_ERR:-(no JSON; see $IPERF_JSON.err)}"
        printf '%s\t%s\t%s\tnan\tnan\tnan\tnan\n' "$round" "$peer" "$test" >>"$WORK/tput.tsv"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$peer" "$test" "$gbps" "$bytes" "$cpu_ms" "$lost" >>"$WORK/tput.tsv"
    if [[ $test == udp ]]; then
        log "  $(printf '%-13s %-3s %6.2f Gbit/s  lost %5.1f %%  cpu %s ms' "$peer" "$test" "$gbps" "$lost" "$cpu_ms")"
    else
        log "  $(printf '%-13s %-3s %6.2f Gbit/s  cpu %s ms' "$peer" "$test" "$gbps" "$cpu_ms")"
    fi
}

for p in "${ACTIVE[@]}"; do
    start_peer "$p" tput "$IPERF_PORT" || { SKIP[$p]="failed to start"; stop_peer "$p" tput; }
done
for ((r = 1; r <= ROUNDS; r++)); do
    log "throughput, round $r/$ROUNDS"
    for p in $(rotate $((r - 1))); do
        [[ -n ${SKIP[$p]:-} ]] && continue
        iperf_run "$p" 1 "$r"
        iperf_run "$p" P4 "$r"
        if udp_capable "$p"; then iperf_run "$p" udp "$r"; fi
    done
done
# The throughput tunnels are no longer needed.
for p in "${ACTIVE[@]}"; do stop_peer "$p" tput; done

# ---- 2. new-stream latency -------------------------------------------------
: >"$WORK/lat.tsv"
start_echo_server
for p in "${ACTIVE[@]}"; do
    [[ -n ${SKIP[$p]:-} ]] && continue
    start_peer "$p" lat "$ECHO_PORT" || { SKIP[$p]="failed to start"; stop_peer "$p" lat; }
done
if [[ -n ${CPID[ssh/lat]:-} && -z ${SKIP[ssh]:-} ]]; then
    # The cipher ssh negotiates by default, for the report.
    SSH_CIPHER=$(timeout 15 ssh "${SSH_BASE[@]}" -o LogLevel=DEBUG1 -p $((PORT_BASE + 130 + $(peer_index ssh))) \
        "$SSH_USER@$LO" true 2>&1 | awk '/kex: client->server cipher:/ { print $5; exit }' || true)
    VERSION[ssh]+=", cipher ${SSH_CIPHER:-unknown}"
fi
latency_rounds new-stream streams

# ---- 3. held connections --------------------------------------------------
: >"$WORK/hold.tsv"
# A held stream costs a client up to 2 fds (wstunnel, rathole: a local one
# and one to the server); keep 64 for listeners, logs, the runtime.
if ! clamp_hold; then
    log "fd limit $FD_LIMIT: holding $HOLD_N, not $HOLD"
fi
# hold_run PEER: HOLD_N connections through PEER's lat set.
hold_run() {
    local peer=$1 key="$1/lat" c0 c1 s0 s1 gone=no p
    c0=$(rss_tree "${CPID[$key]}")
    s0=$(rss_tree "${SPID[$key]}")
    hold_start "$peer" "${FRONT[$key]}" "$HOLD_N" 5s "${CPID[$key]}" "${SPID[$key]}"
    c1=$(rss_tree "${CPID[$key]}")
    s1=$(rss_tree "${SPID[$key]}")
    hold_release "$peer"
    local established=$HELD_ESTABLISHED alive=$HELD_ALIVE dropped=$HELD_DROPPED vfail=$HELD_VFAIL cpu_ms=$HELD_CPU_MS
    for p in "${CPID[$key]}" "${SPID[$key]}"; do
        if ! kill -0 "$p" 2>/dev/null; then gone="yes (pid $p)"; fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$HOLD_N" "${established:-0}" "${alive:-nan}" \
        "${dropped:-nan}" "${vfail:-nan}" "$c0" "$c1" "$s0" "$s1" "$cpu_ms" "$gone" >>"$WORK/hold.tsv"
    log "  $peer: ${established:-0} established, ${alive:-?} alive at release; client RSS $c0 → $c1 KiB, server $s0 → $s1 KiB; exited: $gone"
}
for p in "${ACTIVE[@]}"; do
    [[ $p == direct || -n ${SKIP[$p]:-} ]] && continue
    log "held connections: $HOLD_N through $p"
    hold_run "$p"
done

mark_end

# ---- report ---------------------------------------------------------------
# (tput_med, tput_best, cpu_per_gb_med, lat_med, fmt, ratio, verdict: lib.sh)
describe() {
    case $1 in
        direct) echo "no tunnel" ;;
        onedoor) echo "${VERSION[onedoor]}: \`connect -L\` → \`serve --tunnel\`, TLS (encrypted)" ;;
        onedoor-b) echo "${VERSION[onedoor-b]}: the same, side by side" ;;
        onedoor-wss) echo "${VERSION[onedoor]}: the same over \`--transport wss\` (WebSocket in serve's own TLS: one layer)" ;;
        onedoor-ws) echo "${VERSION[onedoor]}: the same over \`--transport ws\` (plain HTTP outside, the inner TLS layer inside)" ;;
        ssh) echo "${VERSION[ssh]:-OpenSSH}: \`ssh -L\` → sshd (encrypted)" ;;
        wstunnel-wss) echo "${VERSION[wstunnel-wss]:-wstunnel}: \`wss://\` (TLS, encrypted)" ;;
        wstunnel-ws) echo "${VERSION[wstunnel-ws]:-wstunnel}: \`ws://\` (unencrypted)" ;;
        wstunnel-nginx) echo "${VERSION[wstunnel-wss]:-wstunnel}: \`wss://\` to nginx (its own certificate, not verified), \`ws://\` from nginx to its server (one layer of encryption, to nginx)" ;;
        onedoor-nginx) echo "${VERSION[onedoor]}: \`--transport wss\` to nginx (its own certificate), plain HTTP from nginx to serve: the session in the inner layer (two layers: TLS to nginx, and the pinned TLS inside)" ;;
        rathole) echo "${VERSION[rathole]:-rathole}: TCP transport (unencrypted)" ;;
        haproxy-pair) echo "${VERSION[haproxy-pair]:-HAProxy}: two processes in TCP mode, chained like a tunnel's two ends (unencrypted, no session: a TCP connection per stream between them; a floor, not a tunnel)" ;;
    esac
}

D1=$(tput_med direct 1 4)
DP4=$(tput_med direct P4 4)
DU=$(tput_med direct udp 4)
DLAT=$(lat_med direct 3)
declare -A HOLDKIB=() HOLDC=() HOLDS=()
while IFS=$'\t' read -r label _n est alive _dr _vf c0 c1 s0 s1 _cpu _gone; do
    if isnum "$est" && [[ $est -gt 0 ]]; then
        d=$est
        if isnum "$alive" && [[ $alive -gt 0 ]]; then d=$alive; fi
        HOLDC[$label]=$(awk -v b="$c0" -v a="$c1" -v n="$d" 'BEGIN { printf "%.1f", (a - b) / n }')
        HOLDS[$label]=$(awk -v b="$s0" -v a="$s1" -v n="$d" 'BEGIN { printf "%.1f", (a - b) / n }')
        HOLDKIB[$label]=$(awk -v b="$((c0 + s0))" -v a="$((c1 + s1))" -v n="$d" 'BEGIN { printf "%.1f", (a - b) / n }')
    fi
done <"$WORK/hold.tsv"

{
    report_head tunnel ""
    echo
    echo "Median of $ROUNDS rounds (in brackets: the best round; other load only ever lowers throughput); iperf3 \`-t $DURATION\` to \`iperf3 -s\`" \
        "through each tool's local forward. CPU: the tool's client and server process trees together." \
        "New streams: $LAT_COUNT per peer per round through a live session (connect, send \`$PAYLOAD\`, first echoed byte, close), medians of the per-round percentiles." \
        "Held: $HOLD_N concurrent forwarded connections, each echoed once; (client + server) RSS growth / connections."
    echo
    echo "| peer | what | 1 stream Gbit/s (best) | × direct | -P4 Gbit/s | × direct | CPU s/GB (1 / -P4) | new stream p50 / p99 µs | × direct p50 | KiB per held conn (client + server) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for p in $PEERS; do
        if [[ -n ${SKIP[$p]:-} ]]; then
            echo "| $p | skipped: ${SKIP[$p]} | | | | | | | | |"
            continue
        fi
        row_medians "$p"
        hk=—
        if [[ -n ${HOLDKIB[$p]:-} ]]; then hk="${HOLDKIB[$p]} (${HOLDC[$p]} + ${HOLDS[$p]})"; fi
        echo "| $p | $(describe "$p") | $(fmt %.2f "$ROW_G1") ($(fmt %.1f "$ROW_B1")) | $(ratio "$ROW_G1" "$D1") | $(fmt %.2f "$ROW_G4") | $(ratio "$ROW_G4" "$DP4")" \
            "| $(fmt %.2f "$ROW_C1") / $(fmt %.2f "$ROW_C4") | $(fmt %.0f "$ROW_L50") / $(fmt %.0f "$ROW_L99") | $(ratio "$ROW_L50" "$DLAT") | $hk |"
    done
    echo
    echo "UDP: \`iperf3 -u -b $UDP_RATE${UDP_LEN:+ -l $UDP_LEN}\` (what the iperf3 server received; loss as it counted it), through each tool that forwards UDP:"
    echo
    echo "| peer | received Gbit/s (best) | × direct | lost % | CPU s/GB |"
    echo "|---|---|---|---|---|"
    for p in $PEERS; do
        udp_capable "$p" || continue
        if [[ -n ${SKIP[$p]:-} ]]; then
            echo "| $p | skipped: ${SKIP[$p]} | | | |"
            continue
        fi
        gu=$(tput_med "$p" udp 4)
        bu=$(tput_best "$p" udp)
        lu=$(tput_med "$p" udp 7)
        cu=$(cpu_per_gb_med "$p" udp)
        echo "| $p | $(fmt %.2f "$gu") ($(fmt %.2f "$bu")) | $(ratio "$gu" "$DU") | $(fmt %.1f "$lu") | $(fmt %.2f "$cu") |"
    done
    if [[ " $PEERS " == *" ssh "* ]]; then echo "| ssh | no UDP forwarding (\`ssh -L\` is TCP only) | | | |"; fi
    echo
    if [[ -s $WORK/hold.tsv ]]; then
        echo "Held connections:"
        echo
        echo "| peer | requested | established | alive at release | dropped while held / failed the check | client RSS before → after KiB | server RSS before → after KiB | KiB per conn: client + server = total | CPU s while holding | a process exited |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        while IFS=$'\t' read -r label n est alive dr vf c0 c1 s0 s1 cpu gone; do
            echo "| $label | $n | $est | $alive | $dr / $vf | $c0 → $c1 | $s0 → $s1 | ${HOLDC[$label]:-—} + ${HOLDS[$label]:-—} = ${HOLDKIB[$label]:-—} | $(fmt %.2f "$(awk -v c="$cpu" 'BEGIN { if (c ~ /^[0-9.]+$/) print c / 1000; else print "nan" }')") | $gone |"
        done <"$WORK/hold.tsv"
        echo
    fi
    if [[ -z ${SKIP[onedoor]:-} && " $PEERS " == *" onedoor "* ]]; then
        O1=$(tput_med onedoor 1 4)
        OB=$(tput_best onedoor 1)
        S1=$(tput_med ssh 1 4)
        SB=$(tput_best ssh 1)
        W1=$(tput_med wstunnel-wss 1 4)
        WB=$(tput_best wstunnel-wss 1)
        OLAT=$(lat_med onedoor 3)
        echo "Targets (issue 4; verdicts on the medians):"
        echo
        echo "| target | measured | verdict |"
        echo "|---|---|---|"
        if isnum "$O1" && isnum "$S1"; then
            echo "| single stream ≥ 2× \`ssh -L\` | $(ratio "$O1" "$S1") ($(fmt %.2f "$O1") vs $(fmt %.2f "$S1") Gbit/s; best vs best $(ratio "$OB" "$SB")) | $(verdict "$O1 >= 2 * $S1") |"
        else
            echo "| single stream ≥ 2× \`ssh -L\` | not measured | — |"
        fi
        if isnum "$O1" && isnum "$W1"; then
            echo "| single stream ≥ 1.2× wstunnel \`wss\` | $(ratio "$O1" "$W1") ($(fmt %.2f "$O1") vs $(fmt %.2f "$W1") Gbit/s; best vs best $(ratio "$OB" "$WB")) | $(verdict "$O1 >= 1.2 * $W1") |"
        else
            echo "| single stream ≥ 1.2× wstunnel \`wss\` | not measured${SKIP[wstunnel-wss]:+ (${SKIP[wstunnel-wss]})} | — |"
        fi
        if isnum "$OLAT" && isnum "$DLAT"; then
            echo "| new-stream p50 ≤ 2× direct | $(ratio "$OLAT" "$DLAT") ($(fmt %.0f "$OLAT") vs $(fmt %.0f "$DLAT") µs) | $(verdict "$OLAT <= 2 * $DLAT") |"
            HLAT=$(lat_med haproxy-pair 3)
            if isnum "$HLAT"; then
                echo "| (floor: two plain HAProxy relays, new-stream p50) | $(ratio "$HLAT" "$DLAT") direct ($(fmt %.0f "$HLAT") µs); onedoor $(ratio "$OLAT" "$HLAT") of it | — |"
            fi
        else
            echo "| new-stream p50 ≤ 2× direct | not measured | — |"
        fi
        if [[ -n ${HOLDKIB[onedoor]:-} ]]; then
            oalive=$(awk -F'\t' '$1 == "onedoor" { print $4 }' "$WORK/hold.tsv")
            echo "| ≤ 16 KiB per held connection, client and server together | ${HOLDKIB[onedoor]} KiB (${HOLDC[onedoor]} client + ${HOLDS[onedoor]} server), $oalive of $HOLD_N alive | $(verdict "${HOLDKIB[onedoor]} <= 16 && $oalive >= $HOLD_N") |"
        else
            echo "| ≤ 16 KiB per held connection | not measured | — |"
        fi
        echo
    fi
    echo "<details><summary>Every run</summary>"
    echo
    echo "| round | peer | test | Gbit/s received | GB moved | client + server CPU s | UDP lost % |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "nan" ? "failed" : sprintf("%.2f", $4)), ($5 == "nan" ? "—" : sprintf("%.2f", $5 / 1e9)), ($6 == "nan" ? "—" : sprintf("%.2f", $6 / 1000)), ($7 == "nan" ? "—" : sprintf("%.1f", $7)) }' "$WORK/tput.tsv"
    echo
    echo "| round | peer | p50 µs | p99 µs | errors | streams |"
    echo "|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %s | %s | %.0f | %.0f | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$WORK/lat.tsv"
    echo
    echo "Peers as started (server ⟷ client):"
    echo
    echo '```'
    cat "$WORK/commands.txt" 2>/dev/null || true
    echo '```'
    echo
    echo "</details>"
} >"$WORK/report.md"
log "done in $ELAPSED s"
