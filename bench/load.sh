#!/usr/bin/env bash
# Load bench: mmap-serve against nginx (sendfile), tower-http ServeDir and an in-memory hyper server (the
# ceiling, run twice: plain, and making the system calls mmap-serve makes), each server on one core and wrk on
# the other, seven workloads in alternating rounds. Writes the medians and ratios to BENCHMARKS.md.
#
#   bench/load.sh                          # full run: 5 rounds x 3 s per workload per server
#                                          # (10 minutes on an idle machine, 14 with waits for quiet)
#   DURATION=2 ROUNDS=1 bench/load.sh      # quick mode
#
# Environment (defaults in brackets):
#   DURATION [3]     seconds per measured wrk run      ROUNDS [5]        rounds per workload and server
#   WARMUP [1]       seconds of unmeasured wrk per workload and server, before the first round
#   CONNS [64]       connections (the 256 MiB workload uses BIG_CONNS [4])
#   SERVER_CPU [1]   core of every server              CLIENT_CPU [0]    core of wrk (and of this script)
#   BASE_PORT [18080]  servers listen on 127.0.0.1:BASE_PORT..BASE_PORT+4
#   SERVERS ["nginx serve_dir ceiling ceiling_checks mmap-serve"]   a subset for debugging (a ratio needs
#                    mmap-serve and the other server); ceiling_checks is the ceiling with --checks: the same
#                    in-memory server making the system calls mmap-serve makes to keep its promises
#   FIXTURES [a temp dir, removed at exit]  a fixture directory to create once and reuse (kept)
#   OUT [BENCHMARKS.md in the repo]   where the report goes
#   KEEP_TMP [0]     1 keeps the temp dir: wrk's output (wrk.log), raw results, server logs, nginx.conf
#   FOREIGN_MAX [10] % of a core other processes may use during a run before it is repeated, RETRIES [2]
#                    times at most, RETRY_BUDGET [20] repeats in all; QUIET_WAIT [30] s to wait for an idle
#                    machine before each run
#
# Needs root (or wrk, nginx, python3 and curl already installed), Linux, taskset, and about 1.5 GiB of disk
# (and, for the two ceilings, 3 GiB of memory on top of the page cache).
set -euo pipefail

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
BIG_CONNS=${BIG_CONNS:-4}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
BASE_PORT=${BASE_PORT:-18080}
SERVERS=${SERVERS:-"nginx serve_dir ceiling ceiling_checks mmap-serve"}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$repo/BENCHMARKS.md}
target=${CARGO_TARGET_DIR:-$repo/target}
command_line="${FIXTURES:+FIXTURES=$FIXTURES }DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP CONNS=$CONNS BIG_CONNS=$BIG_CONNS bench/load.sh"

log() { printf '[load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

tmp=$(mktemp -d /tmp/mmap-serve-load.XXXXXX)
declare -A pid port
cleanup() {
    local name
    for name in "${!pid[@]}"; do
        # Only the processes this script started, by id (nginx's master takes its worker down).
        kill -TERM "${pid[$name]}" 2>/dev/null || true
    done
    for name in "${!pid[@]}"; do
        wait "${pid[$name]}" 2>/dev/null || true
    done
    touch "$tmp/stop" # ends a sampler left behind by an error
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $tmp (wrk output in wrk.log, raw results in results.tsv)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# --- tools ------------------------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    [[ $EUID == 0 ]] || die "missing ${missing[*]}: run as root or install them"
    log "installing ${missing[*]}"
    # Keep the package's own nginx service from starting on port 80 (policy-rc.d is Debian's switch for it).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$tmp/apt.log" ||
        { cat "$tmp/apt.log" >&2; die "apt-get install failed"; }
    if ((own_policy)); then rm -f "$policy"; fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# --- servers' binaries --------------------------------------------------------------------------------------
log "building the serve, serve_dir and ceiling examples (release)"
(cd "$repo" && cargo build --release --quiet --example serve --example serve_dir --example ceiling)
bin=$target/release/examples

# --- fixtures -----------------------------------------------------------------------------------------------
fixtures=${FIXTURES:-$tmp/fixtures}
make_fixtures() {
    local dir=$1
    log "creating fixtures in $dir (4 KiB, 256 MiB, 1 GiB, 2,000 x 64 KiB)"
    rm -rf "$dir" && mkdir -p "$dir/dir"
    head -c 4096 /dev/urandom >"$dir/small.bin"
    head -c $((256 << 20)) /dev/urandom >"$dir/big256.bin"
    head -c $((1 << 30)) /dev/urandom >"$dir/big1g.bin"
    head -c $((2000 * 65536)) /dev/urandom |
        (cd "$dir/dir" && split -b 65536 -d -a 4 --additional-suffix=.bin - f)
    [[ -f $dir/dir/f1999.bin && ! -e $dir/dir/f2000.bin ]] || die "unexpected fixture file names"
    chmod -R a+rX "$dir" # nginx's worker runs as an unprivileged user
    touch "$dir/.complete"
}
[[ -f $fixtures/.complete ]] || make_fixtures "$fixtures"
chmod a+rx "$tmp"
log "warming the page cache"
cat "$fixtures"/*.bin "$fixtures"/dir/*.bin >/dev/null

# --- start the servers --------------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_nginx() {
    local p=$1 conf=$tmp/nginx
    mkdir -p "$conf"
    # worker_cpu_affinity is a bit mask, lowest bit first from the right: core N is "1" and N zeros.
    local mask=1
    for ((i = 0; i < SERVER_CPU; i++)); do mask+=0; done
    cat >"$conf/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $mask;
daemon off;
pid $conf/nginx.pid;
error_log $conf/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    open_file_cache max=10000 inactive=60s;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    client_body_temp_path $conf/body;
    proxy_temp_path $conf/proxy;
    fastcgi_temp_path $conf/fastcgi;
    uwsgi_temp_path $conf/uwsgi;
    scgi_temp_path $conf/scgi;
    server {
        listen 127.0.0.1:$p;
        root $fixtures;
    }
}
EOF
    taskset -c "$SERVER_CPU" "$nginx_bin" -e "$conf/error.log" -p "$conf" -c "$conf/nginx.conf" \
        >"$tmp/nginx.out" 2>&1 &
    pid[nginx]=$!
}

start_rust() {
    local name=$1 exe=$2 p=$3
    shift 3
    taskset -c "$SERVER_CPU" "$bin/$exe" --root "$fixtures" --listen "127.0.0.1:$p" --threads 1 "$@" \
        >"$tmp/$name.out" 2>&1 &
    pid[$name]=$!
}

i=0
for name in $SERVERS; do
    port[$name]=$((BASE_PORT + i))
    i=$((i + 1))
    port_busy "${port[$name]}" && die "127.0.0.1:${port[$name]} is in use (set BASE_PORT)"
    case $name in
    nginx) start_nginx "${port[$name]}" ;;
    serve_dir) start_rust serve_dir serve_dir "${port[$name]}" ;;
    ceiling) start_rust ceiling ceiling "${port[$name]}" ;;
    ceiling_checks) start_rust ceiling_checks ceiling "${port[$name]}" --checks ;;
    mmap-serve) start_rust mmap-serve serve "${port[$name]}" ;;
    *) die "unknown server $name" ;;
    esac
done

# The process whose memory counts: nginx's single worker, the Rust servers themselves.
declare -A mem_pid
for name in $SERVERS; do
    for _ in $(seq 300); do
        curl -fs -o /dev/null "http://127.0.0.1:${port[$name]}/small.bin" && break
        kill -0 "${pid[$name]}" 2>/dev/null || { cat "$tmp/$name.out" >&2; die "$name exited"; }
        sleep 0.1
    done
    curl -fs -o /dev/null "http://127.0.0.1:${port[$name]}/small.bin" || die "$name does not answer"
    mem_pid[$name]=${pid[$name]}
    if [[ $name == nginx ]]; then
        mem_pid[$name]=$(pgrep -P "${pid[nginx]}" | head -1)
        [[ -n ${mem_pid[$name]} ]] || die "no nginx worker"
    fi
    log "$name up on 127.0.0.1:${port[$name]} (pid ${pid[$name]}, memory of pid ${mem_pid[$name]})"
done

# --- verify every server before measuring -------------------------------------------------------------------
multi_range="bytes=0-1023,536870912-536871935,1073740800-1073741823"
declare -A etag multipart
cat >"$tmp/verify.py" <<'EOF'
"""Checks one server's answers byte for byte; prints the multipart verdict."""
import hashlib, http.client, re, sys

port, root, etag, multi = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def get(path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body

def file_bytes(name, start=0, length=None):
    with open(f"{root}/{name}", "rb") as f:
        f.seek(start)
        return f.read() if length is None else f.read(length)

def check(what, ok):
    if not ok:
        sys.exit(f"FAIL {what}")

for name in ["small.bin", "big256.bin", "dir/f0000.bin", "dir/f1234.bin", "dir/f1999.bin"]:
    status, _, body = get("/" + name)
    check(f"GET /{name}: status {status}", status == 200)
    want = hashlib.sha256(file_bytes(name)).hexdigest()
    check(f"GET /{name}: sha256", hashlib.sha256(body).hexdigest() == want)

size = 1 << 30
for start, length in [(0, 4096), (123 * 4096, 4096), (size - 4096, 4096), (777 * 65536, 65536)]:
    end = start + length - 1
    status, headers, body = get("/big1g.bin", {"Range": f"bytes={start}-{end}"})
    check(f"Range {start}-{end}: status {status}", status == 206)
    check(f"Range {start}-{end}: Content-Range {headers['Content-Range']}",
          headers["Content-Range"] == f"bytes {start}-{end}/{size}")
    check(f"Range {start}-{end}: bytes", body == file_bytes("big1g.bin", start, length))

status, headers, _ = get("/small.bin", {"If-None-Match": etag})
check(f"If-None-Match {etag}: status {status}", status == 304)
status, _, _ = get("/small.bin", {"If-None-Match": '"not-the-etag"'})
check(f"If-None-Match with another tag: status {status}", status == 200)

status, headers, body = get("/big1g.bin", {"Range": multi})
if status == 416:
    print("416")
    sys.exit(0)
check(f"multipart: status {status}", status == 206)
ctype = headers["Content-Type"]
found = re.fullmatch(r'multipart/byteranges;\s*boundary="?([^";]+)"?', ctype)
check(f"multipart: Content-Type {ctype}", found)
delimiter = b"--" + found.group(1).encode()
wanted = [tuple(map(int, r.split("-"))) for r in multi.removeprefix("bytes=").split(",")]
rest, parts = body, []
for first, last in wanted:
    at = rest.find(delimiter)
    check("multipart: delimiter", at >= 0)
    rest = rest[at + len(delimiter):]
    check("multipart: delimiter line", rest.startswith(b"\r\n"))
    head, sep, rest = rest[2:].partition(b"\r\n\r\n")
    check("multipart: part headers", sep)
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
    fields = {k.lower(): v for k, v in fields.items()}
    check(f"multipart: part Content-Range {fields.get(b'content-range')}",
          fields.get(b"content-range") == f"bytes {first}-{last}/{size}".encode())
    data, rest = rest[: last - first + 1], rest[last - first + 1 :]
    check(f"multipart: part {first}-{last} bytes", data == file_bytes("big1g.bin", first, last - first + 1))
    check("multipart: CRLF before the next delimiter", rest.startswith(b"\r\n" + delimiter))
check("multipart: close delimiter", rest.strip(b"\r\n") == delimiter + b"--")
print("206")
EOF
for name in $SERVERS; do
    url="http://127.0.0.1:${port[$name]}"
    etag[$name]=$(curl -fsS -o /dev/null -D - "$url/small.bin" | tr -d '\r' |
        awk 'tolower($1) == "etag:" { print $2 }')
    [[ -n ${etag[$name]} ]] || die "$name sends no ETag for /small.bin"
    multipart[$name]=$(python3 "$tmp/verify.py" "${port[$name]}" "$fixtures" "${etag[$name]}" "$multi_range") ||
        die "$name failed verification"
    log "$name verified (ETag ${etag[$name]}, multipart answer ${multipart[$name]})"
done

# --- workloads ----------------------------------------------------------------------------------------------
# Every script reports through done(); the random ones seed math.random per thread with a fixed value.
report_lua='
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %d %d %d %d %d %d\n", summary.requests, summary.bytes,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end'
seed_lua='
local threads = 0
setup = function(thread) threads = threads + 1; thread:set("id", threads) end
init = function(args) math.randomseed(4242 + (tonumber(id) or 0)) end'
echo "$report_lua" >"$tmp/static.lua"
for span in 4096 65536; do
    cat >"$tmp/range$span.lua" <<EOF
$seed_lua
local span, slots = $span, $(((1 << 30) / span))
request = function()
  local first = (math.random(slots) - 1) * span
  return wrk.format("GET", "/big1g.bin", { Range = string.format("bytes=%d-%d", first, first + span - 1) })
end
$report_lua
EOF
done
cat >"$tmp/files.lua" <<EOF
$seed_lua
request = function()
  return wrk.format("GET", string.format("/dir/f%04d.bin", math.random(0, 1999)))
end
$report_lua
EOF

workloads=(small large range4k range64k multipart notmod files)
# Another workload on this machine (a build, a test run) steals cycles from a server or from wrk and makes its
# run meaningless. So every run waits for a quiet machine first, counts the CPU ticks spent outside the server
# and wrk while it ran ("foreign" time), and is repeated when that exceeds FOREIGN_MAX percent of one core.
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-2}
QUIET_WAIT=${QUIET_WAIT:-30}
retry_budget=${RETRY_BUDGET:-20}
hz=$(getconf CLK_TCK)
# Busy CPU ticks of the whole machine so far (user, nice, system, irq, softirq).
machine_busy() {
    local _cpu user nice system _idle _iowait irq softirq _rest
    read -r _cpu user nice system _idle _iowait irq softirq _rest </proc/stat
    echo $((user + nice + system + irq + softirq))
}
# CPU ticks used so far by a process (all its threads).
process_cpu() {
    local stat fields
    stat=$(<"/proc/$1/stat")
    read -ra fields <<<"${stat##*) }" # fields[0] is field 3 of proc(5): utime is 14, stime 15
    echo $((fields[11] + fields[12]))
}
# Sets children_ticks to the CPU ticks of the waited-for children of the calling (sub)shell: cutime + cstime,
# fields 16 and 17. No command substitution here: it would read the stat of its own subshell.
children_cpu() {
    local stat fields
    read -r stat <"/proc/$BASHPID/stat"
    read -ra fields <<<"${stat##*) }"
    children_ticks=$((fields[13] + fields[14]))
}
# Waits up to QUIET_WAIT seconds until the machine is idle (under 5% of a core over half a second).
wait_quiet() {
    local start=$SECONDS before after said=0
    while :; do
        before=$(machine_busy)
        sleep 0.5
        after=$(machine_busy)
        ((after - before <= hz / 20)) && return 0
        if ((SECONDS - start >= QUIET_WAIT)); then
            log "machine still busy after ${QUIET_WAIT}s ($((after - before)) ticks in 0.5 s): measuring anyway"
            return 0
        fi
        if ((!said)); then
            log "machine busy ($((after - before)) ticks in 0.5 s): waiting for quiet"
            said=1
        fi
        sleep 1
    done
}

# The page cache of the fixtures. This machine (and any under a memory limit) pages out idle page cache within
# minutes, so every measured run first re-reads what its workload reads ("warm": only files not wholly
# resident are read, whole) and, after it, reports how much of them was still resident (bench/pagecache.py).
pagecache=$repo/bench/pagecache.py

# workload_files WORKLOAD -> the fixture files the workload reads
workload_files() {
    case $1 in
    small | notmod) echo "$fixtures/small.bin" ;;
    large) echo "$fixtures/big256.bin" ;;
    range4k | range64k | multipart) echo "$fixtures/big1g.bin" ;;
    files) echo "$fixtures"/dir/f*.bin ;;
    esac
}

# run_wrk SERVER WORKLOAD SECONDS
#   -> prints "requests bytes duration_us connect read write status timeout wrk_cpu_ticks"
run_wrk() {
    local name=$1 workload=$2 seconds=$3 url="http://127.0.0.1:${port[$1]}"
    local conns=$CONNS timeout=10s script=$tmp/static.lua path=/small.bin
    local -a headers=()
    case $workload in
    small) ;;
    large) conns=$BIG_CONNS timeout=60s path=/big256.bin ;;
    range4k) script=$tmp/range4096.lua path=/big1g.bin ;;
    range64k) script=$tmp/range65536.lua path=/big1g.bin ;;
    multipart)
        path=/big1g.bin
        headers=(-H "Range: $multi_range")
        ;;
    notmod) headers=(-H "If-None-Match: ${etag[$name]}") ;;
    files) script=$tmp/files.lua path=/dir/f0000.bin ;;
    esac
    local before after
    children_cpu
    before=$children_ticks
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${seconds}s" --timeout "$timeout" -s "$script" \
        "${headers[@]}" "$url$path" >"$tmp/wrk.out" 2>&1 || true
    cat "$tmp/wrk.out" >>"$tmp/wrk.log"
    children_cpu
    after=$children_ticks
    local result
    result=$(grep '^WRKRESULT' "$tmp/wrk.out" | cut -d' ' -f2-) || { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
    echo "$result $((after - before))"
}

# Peak RssAnon (KiB) of a pid, sampled every 0.2 s until $tmp/stop appears.
sample_rss() {
    local p=$1 peak=0 key value _
    while [[ ! -e $tmp/stop && -r /proc/$p/status ]]; do
        while read -r key value _; do
            if [[ $key == RssAnon: ]]; then
                if ((value > peak)); then peak=$value; fi
                break
            fi
        done <"/proc/$p/status" || true
        sleep 0.2
    done
    echo "$peak"
}

# From here on this script and its children (wrk, the sampler) stay on the client's core.
taskset -pc "$CLIENT_CPU" $$ >/dev/null

results=$tmp/results.tsv
: >"$results"
read -ra names <<<"$SERVERS"
if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per workload and server"
    for workload in "${workloads[@]}"; do
        for name in "${names[@]}"; do run_wrk "$name" "$workload" "$WARMUP" >/dev/null; done
    done
fi
: >"$tmp/wrk.log"
for ((round = 1; round <= ROUNDS; round++)); do
    for workload in "${workloads[@]}"; do
        # Rotate the order every round so no server always runs first or last.
        for ((k = 0; k < ${#names[@]}; k++)); do
            name=${names[$(((k + round - 1) % ${#names[@]}))]}
            for ((attempt = 0; ; attempt++)); do
                read -ra files <<<"$(workload_files "$workload")"
                # Pages brought back into the page cache, in bytes.
                reread=$(python3 "$pagecache" warm "${files[@]}" | awk '{ n += $3 - $2 } END { print n * 4096 }')
                wait_quiet
                rm -f "$tmp/stop"
                sample_rss "${mem_pid[$name]}" >"$tmp/rss" &
                sampler=$!
                busy_before=$(machine_busy)
                server_before=$(process_cpu "${mem_pid[$name]}")
                result=$(run_wrk "$name" "$workload" "$DURATION")
                server_after=$(process_cpu "${mem_pid[$name]}")
                busy_after=$(machine_busy)
                touch "$tmp/stop"
                wait "$sampler"
                read -r kept_pages all_pages < <(python3 "$pagecache" resident "${files[@]}" |
                    awk '{ kept += $3; all += $4 } END { print kept, all }')
                read -r requests bytes micros _ _ _ _ _ wrk_cpu <<<"$result"
                foreign=$((busy_after - busy_before - (server_after - server_before) - wrk_cpu))
                # As a percentage of one core over the run.
                foreign_pct=$((foreign * 100 * 1000000 / (hz * micros)))
                ((foreign_pct < 0)) && foreign_pct=0
                log "round $round/$ROUNDS $workload $name: $((requests * 1000000 / micros)) req/s," \
                    "$((bytes / micros)) MB/s, RssAnon $(($(cat "$tmp/rss") / 1024)) MiB, foreign CPU ${foreign_pct}%"
                if ((foreign_pct <= FOREIGN_MAX || attempt >= RETRIES || retry_budget <= 0)); then
                    break
                fi
                retry_budget=$((retry_budget - 1))
                log "repeating: another workload used ${foreign_pct}% of a core during the run"
            done
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$workload" "$name" \
                "${result// /$'\t'}" "$(cat "$tmp/rss")" "$foreign_pct" "$attempt" \
                "$((server_after - server_before))" "$reread" "$kept_pages" "$all_pages" >>"$results"
        done
    done
done

# --- report -------------------------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
wrk_version=$( (wrk -v 2>&1 || true) | head -1 | awk '{ print $1, $2 }')
rustc_version=$(rustc -V)
commit=$(cd "$repo" && git rev-parse --short HEAD)
[[ -z $(cd "$repo" && git status --porcelain -- src examples Cargo.toml) ]] || commit+=" (with uncommitted changes)"
mp_summary=""
for name in $SERVERS; do mp_summary+="$name=${multipart[$name]} "; done

python3 - "$results" "$OUT" <<EOF
import statistics, sys
from collections import defaultdict

results, out = sys.argv[1], sys.argv[2]
servers = "$SERVERS".split()
multipart = dict(kv.split("=") for kv in "$mp_summary".split())
labels = {"nginx": "nginx (sendfile)", "serve_dir": "tower-http ServeDir", "ceiling": "in-memory ceiling",
          "ceiling_checks": "ceiling + mmap-serve's system calls", "mmap-serve": "mmap-serve"}
workloads = [
    ("small", "GET 4 KiB file, $CONNS conns", "req"),
    ("large", "GET 256 MiB file, $BIG_CONNS conns", "gbps"),
    ("range4k", "random 4 KiB Range of a 1 GiB file, $CONNS conns", "req"),
    ("range64k", "random 64 KiB Range of a 1 GiB file, $CONNS conns", "req"),
    ("multipart", "3-range multipart request (3 x 1 KiB of the 1 GiB file), $CONNS conns", "req"),
    ("notmod", "If-None-Match -> 304 (4 KiB file), $CONNS conns", "req"),
    ("files", "random file of 2,000 x 64 KiB, $CONNS conns", "req"),
]
runs = defaultdict(list)
for line in open(results):
    (rnd, workload, server, req, nbytes, micros, conn, read, write, status, timeout, wrk_cpu, rss, foreign,
     repeats, server_cpu, reread, kept_pages, all_pages) = line.rstrip("\n").split("\t")
    busy = lambda ticks: int(ticks) * 100 / $hz / (int(micros) / 1e6)
    runs[workload, server].append(dict(
        round=int(rnd), req=int(req) / (int(micros) / 1e6), gbps=int(nbytes) / int(micros) / 1e3,
        errors=int(conn) + int(read) + int(write) + int(timeout), status=int(status), total=int(req),
        rss=int(rss) / 1024, foreign=int(foreign), repeats=int(repeats), server_cpu=busy(server_cpu),
        wrk_cpu=busy(wrk_cpu), reread=int(reread),
        resident=100 * int(kept_pages) / int(all_pages) if int(all_pages) else 100.0))
all_runs = [r for rs in runs.values() for r in rs]
repeated = sum(r["repeats"] for r in all_runs)
noisy = [r for r in all_runs if r["foreign"] > $FOREIGN_MAX]

def kept(workload, server):
    """The runs a median is taken of: those without interference, or all of them when none is clean."""
    rs = runs[workload, server]
    return [r for r in rs if r["foreign"] <= $FOREIGN_MAX] or rs

def median(workload, server, unit):
    values = [r[unit] for r in kept(workload, server)]
    return statistics.median(values) if values else None

def unsupported(workload, server):
    return workload == "multipart" and multipart.get(server) == "416"

def fmt(value, unit):
    if value is None:
        return "—"
    return f"{value:.2f} GB/s" if unit == "gbps" else f"{value / 1000:.1f} k"

def ratio(workload, unit, other):
    if "mmap-serve" not in servers or other not in servers or unsupported(workload, other):
        return "n/a"
    a, b = median(workload, "mmap-serve", unit), median(workload, other, unit)
    return f"{a / b:.2f}x" if a and b else "n/a"

lines = []
w = lines.append
w("# Load benchmarks")
w("")
w("Generated by \`bench/load.sh\`: each server on one core with one worker (\`taskset -c $SERVER_CPU\`, "
  "\`--threads 1\`, nginx \`worker_processes 1\`), wrk on the other core (\`taskset -c $CLIENT_CPU wrk -t1\`), "
  "over loopback, page cache warm (re-read before every run where it was not; see Page cache). Each cell is the median of $ROUNDS rounds of ${DURATION} s; rounds alternate "
  "between servers (order rotated each round), after ${WARMUP} s of unmeasured warm-up per workload and server. "
  "Runs disturbed by another workload (see Interference) are left out of a median when the cell has an "
  "undisturbed one. Requests per second in thousands, or GB/s (10^9 bytes, as wrk counts them, headers included). Every server's "
  "answers were checked before measuring: statuses, sha256 of full bodies, range bytes and Content-Range, "
  "the multipart body parsed once, 304 for the current ETag and 200 for another one.")
w("")
w("| workload | " + " | ".join(labels[s] for s in servers) + " | mmap-serve / ceiling | mmap-serve / ceiling + system calls | mmap-serve / ServeDir | mmap-serve / nginx |")
w("|---|" + "---:|" * (len(servers) + 4))
notes = []
for workload, title, unit in workloads:
    cells = []
    for server in servers:
        value = median(workload, server, unit)
        if unsupported(workload, server):
            cells.append(f"no multipart: 416 ({fmt(value, unit)} req/s of 416)")
        else:
            bad = [r for r in runs[workload, server] if r["errors"] or r["status"]]
            noisy_only = all(r["foreign"] > $FOREIGN_MAX for r in runs[workload, server])
            cells.append(fmt(value, unit) + (" †" if bad else "") + (" ‡" if noisy_only else ""))
            for r in bad:
                notes.append(f"- {labels[server]}, {title}, round {r['round']}: {r['status']} responses not 2xx/3xx "
                             f"of {r['total']}, {r['errors']} socket errors or timeouts")
    w(f"| {title} | " + " | ".join(cells) + " | " + " | ".join(
        ratio(workload, unit, o) for o in ["ceiling", "ceiling_checks", "serve_dir", "nginx"]) + " |")
w("")
if notes:
    w("† wrk counted errors in these runs:")
    w("")
    lines.extend(notes)
    w("")
w(f"Interference: every run waited for an idle machine and counted the CPU time spent outside the server and "
  f"wrk while it ran; {repeated} runs were repeated because that exceeded $FOREIGN_MAX% of a core, and "
  f"{len(noisy)} of the {len(all_runs)} kept runs still exceed it (marked ‡ with that share in the last table, "
  f"and left out of the medians; a ‡ in the first table means every run of that cell was disturbed).")
w("")
w("## Paired ratios")
w("")
w("The machine's speed drifts over a run (all servers are faster or slower together in some rounds; see Every "
  "round), so the ratios above, of medians taken minutes apart, carry that drift. Here each round's "
  "mmap-serve result is divided by the other server's result in the same round (seconds apart), then the "
  "median over rounds is taken, with the lowest and highest round in brackets. Rounds where either run was "
  "disturbed are left out.")
w("")
others = [o for o in ["ceiling", "ceiling_checks", "serve_dir", "nginx"] if o in servers]
w("| workload | " + " | ".join(f"mmap-serve / {labels[o]}" for o in others) + " |")
w("|---|" + "---:|" * len(others))
def paired(workload, unit, other):
    if "mmap-serve" not in servers or unsupported(workload, other):
        return "n/a"
    ours = {r["round"]: r for r in runs[workload, "mmap-serve"] if r["foreign"] <= $FOREIGN_MAX}
    theirs = {r["round"]: r for r in runs[workload, other] if r["foreign"] <= $FOREIGN_MAX}
    ratios = sorted(ours[k][unit] / theirs[k][unit] for k in ours.keys() & theirs.keys() if theirs[k][unit])
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}–{ratios[-1]:.2f}]"
for workload, title, unit in workloads:
    w(f"| {title} | " + " | ".join(paired(workload, unit, o) for o in others) + " |")
w("")
w("## Server CPU per request")
w("")
w("CPU time of the server process (nginx: its worker) per request, in microseconds (median over the kept "
  "runs): what a request costs the server whoever set the pace, so it also compares servers that wrk could "
  "not saturate. Kernel time for the loopback TCP work is included.")
w("")
w("| workload | " + " | ".join(labels[s] for s in servers) + " |")
w("|---|" + "---:|" * len(servers))
for workload, title, unit in workloads:
    cells = []
    for s in servers:
        costs = [r["server_cpu"] / 100 * 1e6 / r["req"] for r in kept(workload, s) if r["req"]]
        cells.append(f"{statistics.median(costs):.1f}" if costs else "—")
    w(f"| {title} | " + " | ".join(cells) + " |")
w("")
w("## Server memory")
w("")
w("Peak RssAnon (anonymous resident memory, MiB) of the serving process (nginx: its worker), sampled every "
  "0.2 s from /proc/PID/status during the measured runs. The ceilings hold every fixture in anonymous memory "
  "by design (about 1.4 GiB).")
w("")
w("| workload | " + " | ".join(labels[s] for s in servers) + " |")
w("|---|" + "---:|" * len(servers))
for workload, title, unit in workloads:
    peaks = [max((r["rss"] for r in runs[workload, s]), default=0) for s in servers]
    w(f"| {title} | " + " | ".join(f"{p:.1f}" for p in peaks) + " |")
w("")
w("## Page cache")
w("")
w("Before every measured run the files its workload reads were re-read wherever not wholly resident (this "
  "machine pages out idle page cache within minutes); after the run \`mincore(2)\` said how much of them was "
  "still resident. Per workload: the lowest share resident after any run, the median, and how many of the "
  "runs found pages missing before they started (MiB brought back in all).")
w("")
w("| workload | resident after the run, lowest | median | runs that re-read (MiB brought back) |")
w("|---|---:|---:|---:|")
for workload, title, unit in workloads:
    rs = [r for s in servers for r in runs[workload, s]]
    if not rs:
        continue
    shares = [r["resident"] for r in rs]
    rereads = [r for r in rs if r["reread"]]
    w(f"| {title} | {min(shares):.1f}% | {statistics.median(shares):.1f}% | {len(rereads)} of {len(rs)} "
      f"({sum(r['reread'] for r in rereads) / 2**20:,.0f}) |")
w("")
w("## CPU use")
w("")
w("Median CPU time of the server process (nginx: its worker) and of wrk during the runs, in % of one core. "
  "wrk near 100% means the client, not the server, set the pace: the server had time left, and the gap "
  "between the fastest servers is compressed. Loopback TCP work lands on both sides.")
w("")
w("| workload | " + " | ".join(f"{labels[s]} (server / wrk)" for s in servers) + " |")
w("|---|" + "---:|" * len(servers))
for workload, title, unit in workloads:
    cells = []
    for s in servers:
        rs = runs[workload, s]
        if rs:
            cells.append(f"{statistics.median(r['server_cpu'] for r in rs):.0f} / "
                         f"{statistics.median(r['wrk_cpu'] for r in rs):.0f}")
        else:
            cells.append("—")
    w(f"| {title} | " + " | ".join(cells) + " |")
w("")
w("## Every round")
w("")
w("| workload | server | " + " | ".join(f"round {i}" for i in range(1, $ROUNDS + 1)) + " |")
w("|---|---|" + "---:|" * $ROUNDS)
for workload, title, unit in workloads:
    for server in servers:
        values = [fmt(r[unit], unit) + (f" ‡ {r['foreign']}%" if r["foreign"] > $FOREIGN_MAX else "")
                  for r in sorted(runs[workload, server], key=lambda r: r["round"])]
        w(f"| {workload} | {labels[server]} | " + " | ".join(values) + " |")
w("")
w("## Setup")
w("")
w("- Machine: $(nproc --all) cores ($cpu), $mem, Linux $(uname -r)")
w("- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); mmap-serve at $commit; $rustc_version")
w("- Client: $wrk_version, one thread, \`--timeout 10s\` (60 s for the 256 MiB file); random workloads draw "
  "ranges and files with \`math.random\` seeded with a fixed value per thread (4 KiB and 64 KiB ranges are "
  "aligned to their size), static ones send a precomputed request.")
w("- nginx $nginx_version: one worker, \`sendfile on\`, \`tcp_nopush off\`, \`tcp_nodelay on\`, "
  "\`open_file_cache max=10000 inactive=60s\`, \`access_log off\`, \`keepalive_requests\` raised so "
  "connections are never recycled (hyper does not recycle them either).")
w("- Rust servers: \`examples/serve.rs\` (mmap-serve, default configuration), \`examples/serve_dir.rs\` "
  "(tower-http ServeDir, default 64 KiB read chunks), \`examples/ceiling.rs\` (files preloaded as \`Bytes\`, "
  "every body a slice of them; with \`--checks\`, the same making, and ignoring, the system calls mmap-serve "
  "makes for an answer from a mapped file: one \`mincore\` per part sent, one \`fstat\` per answer); each a multi-threaded Tokio runtime with one worker, hyper-util \`auto\` "
  "(HTTP/1.1 here), TCP_NODELAY, the service called by hyper's \`service_fn\` as soon as a request head is "
  "parsed (\`MmapServe::respond\`; a clone of ServeDir, after its \`poll_ready\`). Release build.")
w("- Multipart answer per server: " + ", ".join(f"{labels[s]} {multipart[s]}" for s in servers) + ".")
w("- Fixtures: random bytes; \`/small.bin\` 4 KiB, \`/big256.bin\` 256 MiB, \`/big1g.bin\` 1 GiB, "
  "\`/dir/f0000.bin\`..\`/dir/f1999.bin\` 64 KiB each. Multipart range: \`$multi_range\`.")
w("")
w("Command:")
w("")
w("\`\`\`sh")
w("$command_line")
w("\`\`\`")
# Sections other benches write (bench/cold.sh, bench/chaos.py), or written by hand, are kept after these.
import os
preserved = []
if os.path.exists(out):
    section = None
    for line in open(out).read().split("\n"):
        if line.startswith("## "):
            name = line.strip()
            section = name if name in ("## Without mmap-serve's checks", "## Files changing under load",
                                      "## Cold page cache") else None
        if section:
            preserved.append(line)
while preserved and preserved[-1] == "":
    preserved.pop()
open(out, "w").write("\n".join(lines + ([""] + preserved if preserved else [])) + "\n")
EOF
log "wrote $OUT"
