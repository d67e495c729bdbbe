#!/usr/bin/env bash
# Chaos test (issue 14): files changing under load. Builds the `serve` example (release), serves a temp
# directory of 20 files (64 KiB-64 MiB) on 127.0.0.1, and runs bench/chaos.py against it: a seeded mutator
# changes the files every 50-300 ms in the seven ways of the issue while 32 clients (20% slow readers) make full,
# range, multi-range, If-Range and If-None-Match requests; every response is classified byte for byte.
#
#   bench/chaos.sh                                 # 60 s against serve
#   QUICK=1 bench/chaos.sh                         # 15 s
#   SERVERS="serve nginx serve_dir" bench/chaos.sh # the same schedule against nginx and tower-http ServeDir
#
# Environment (defaults in brackets):
#   DURATION [60, QUICK=1: 15]  seconds of load per server     SEED [14]     the mutator's and clients' seed
#   SERVERS ["serve"]           serve, nginx (sendfile, open_file_cache_valid 1 s), serve_dir (axum + ServeDir)
#   THREADS [1]                 worker threads of the Rust servers (nginx: one worker process)
#   CLIENTS [32], PROCS [2]     clients, spread over PROCS Python processes
#   BASE_PORT [18180]           servers listen on 127.0.0.1:BASE_PORT, BASE_PORT+1, ... (busy ones skipped)
#   REPORT [$CARGO_TARGET_DIR/chaos/report.txt]   the printed report, with chaos-SERVER.json (every defect) beside
#   KEEP_TMP [0]                1 keeps the temp dir (fixtures, server logs)
#   MUTATE [1]                  0 leaves the files alone (a check of the harness: every server must pass)
#
# Exit status: 0 if every server had no defect (TORN, CORRUPT, MISLABELED, IF_RANGE_SPLICE, NOT_MODIFIED_STALE),
# no hung request, and was alive and answering at the end; 1 otherwise. Needs python3 (3.11), curl, and for
# nginx root (apt-get) or nginx installed. Disk: about 300 MiB in the temp dir, removed at exit.
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then DURATION=${DURATION:-15}; else DURATION=${DURATION:-60}; fi
SEED=${SEED:-14}
SERVERS=${SERVERS:-serve}
THREADS=${THREADS:-1}
CLIENTS=${CLIENTS:-32}
PROCS=${PROCS:-2}
BASE_PORT=${BASE_PORT:-18180}
MUTATE=${MUTATE:-1}
no_mutate=()
[[ $MUTATE == 1 ]] || no_mutate=(--no-mutate)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
REPORT=${REPORT:-$target/chaos/report.txt}
mkdir -p "$(dirname "$REPORT")"
out_dir=$(cd "$(dirname "$REPORT")" && pwd)

log() { printf '[chaos %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

tmp=$(mktemp -d /tmp/mmap-serve-chaos.XXXXXX)
chmod a+rx "$tmp" # nginx's worker runs as an unprivileged user
server_pid=
cleanup() {
    # Only the process this script started, by id (nginx's master takes its worker down).
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 is needed"
command -v curl >/dev/null || die "curl is needed"
if [[ " $SERVERS " == *" nginx "* ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    [[ $EUID == 0 ]] || die "nginx is missing: run as root or install it"
    log "installing nginx"
    policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >"$tmp/apt.log" ||
        { cat "$tmp/apt.log" >&2; die "apt-get install failed"; }
    if ((own_policy)); then rm -f "$policy"; fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

examples=()
for name in $SERVERS; do
    case $name in
    serve | serve_dir) examples+=(--example "$name") ;;
    nginx) ;;
    *) die "unknown server $name (serve, nginx, serve_dir)" ;;
    esac
done
if ((${#examples[@]})); then
    log "building ${examples[*]} (release)"
    (cd "$repo" && cargo build --release --quiet "${examples[@]}")
fi
bin=$target/release/examples

start_server() {
    local name=$1 port=$2 root=$3
    case $name in
    nginx)
        local conf=$tmp/nginx
        mkdir -p "$conf"
        cat >"$conf/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $conf/nginx.pid;
error_log $conf/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 1s;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    client_body_temp_path $conf/body;
    proxy_temp_path $conf/proxy;
    fastcgi_temp_path $conf/fastcgi;
    uwsgi_temp_path $conf/uwsgi;
    scgi_temp_path $conf/scgi;
    server {
        listen 127.0.0.1:$port;
        root $root;
    }
}
EOF
        "$nginx_bin" -e "$conf/error.log" -p "$conf" -c "$conf/nginx.conf" >"$tmp/nginx.out" 2>&1 &
        ;;
    *)
        "$bin/$name" --root "$root" --listen "127.0.0.1:$port" --threads "$THREADS" >"$tmp/$name.out" 2>&1 &
        ;;
    esac
    server_pid=$!
    for _ in $(seq 300); do
        curl -fs -o /dev/null -r 0-0 "http://127.0.0.1:$port/f01.bin" && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/$name.out" >&2; die "$name exited"; }
        sleep 0.1
    done
    die "$name does not answer on 127.0.0.1:$port"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

: >"$REPORT"
status=0
i=0
for name in $SERVERS; do
    port=$((BASE_PORT + i))
    while port_busy "$port"; do # another developer's server: take the next port
        i=$((i + 1))
        port=$((BASE_PORT + i))
    done
    i=$((i + 1))
    root=$tmp/root-$name
    mkdir -p "$root"
    python3 "$repo/bench/chaos.py" --root "$root" --seed "$SEED" --duration "$DURATION" --setup-only
    start_server "$name" "$port" "$root"
    log "$name up on 127.0.0.1:$port (pid $server_pid); $DURATION s of chaos"
    rc=0
    python3 "$repo/bench/chaos.py" --url "http://127.0.0.1:$port" --root "$root" --seed "$SEED" \
        --duration "$DURATION" --clients "$CLIENTS" --procs "$PROCS" --server-pid "$server_pid" \
        --label "$name" "${no_mutate[@]}" --json "$out_dir/chaos-$name.json" | tee -a "$REPORT" || rc=$?
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "$name died"
        rc=1
    fi
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    rm -rf "$root"
    ((rc == 0)) || status=1
    log "$name: exit $rc"
done
log "report in $REPORT (every defect in $out_dir/chaos-SERVER.json)"
exit $status
