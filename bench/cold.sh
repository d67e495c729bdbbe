#!/usr/bin/env bash
# Cold page cache bench (issue 13): mmap-serve against tower-http ServeDir and nginx (with and without
# `aio threads`) when the data is not in memory. Every run starts a fresh server, evicts the big files from the
# page cache with posix_fadvise(POSIX_FADV_DONTNEED), checks with mincore(2) how much of them is still resident,
# then measures one workload:
#   C1  16 connections, random 64 KiB ranges of an evicted 4 GiB file, plus a probe client that fetches a hot
#       4 KiB file every 20 ms on its own keep-alive connection (its p50/p99/max latency)
#   C2  4 connections, each one full GET of an evicted 1 GiB file (MB/s, for at most DURATION seconds)
#   C3  64 connections, random 4 KiB ranges of the evicted 4 GiB file
# in alternating rounds (server order rotated each round), fresh random offsets each run (the wrk script is
# seeded per run and thread). Writes a "Cold page cache" section into BENCHMARKS.md (replacing it if present,
# keeping the rest of the file).
#
#   FIXTURES=/var/tmp/coldfx bench/cold.sh              # full run: 3 rounds x 3 workloads x 4 servers x 15 s
#                                                       # (about 12 minutes, plus 5 GiB of fixtures once)
#   FIXTURES=/var/tmp/coldfx DURATION=5 ROUNDS=1 bench/cold.sh   # quick mode
#
# Environment (defaults in brackets):
#   DURATION [15]    seconds per measured run            ROUNDS [3]    rounds per workload and server
#   SERVER_THREADS [2]  Tokio workers of serve and serve_dir (nginx always runs one worker)
#   SERVER_CPUS [1]  cores of every server (a taskset list)  CLIENT_CPU [0]  core of wrk, curl, the probe
#   BASE_PORT [18180]  servers listen on 127.0.0.1:BASE_PORT..BASE_PORT+3
#   SERVERS ["mmap-serve serve_dir nginx_aio nginx"]   a subset for debugging (ratios need mmap-serve)
#   WORKLOADS ["c1 c2 c3"]   a subset for debugging
#   FIXTURES [a temp dir under /var/tmp, removed at exit]  a directory to create the fixtures in once and reuse
#                    (kept); it must be on a real disk, not tmpfs
#   SEED [the start time]  base of the per-run seeds (run N uses SEED + N)
#   OUT [BENCHMARKS.md in the repo]   file whose "Cold page cache" section is written
#   KEEP_TMP [0]     1 keeps the temp dir: wrk/probe/curl output, raw results, server logs, nginx.conf
#   QUIET_WAIT [5]   seconds to wait for an idle machine before each run (then measure anyway; the load
#                    average and the CPU time used by other processes are reported per run)
#   EVICT_MAX [1]    % of a big file that may stay resident after eviction before it is tried once more
#
# Needs root (or wrk, nginx, python3 and curl already installed), Linux, taskset, and 5 GiB of disk.
set -euo pipefail

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
SERVER_THREADS=${SERVER_THREADS:-2}
SERVER_CPUS=${SERVER_CPUS:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
BASE_PORT=${BASE_PORT:-18180}
SERVERS=${SERVERS:-"mmap-serve serve_dir nginx_aio nginx"}
WORKLOADS=${WORKLOADS:-"c1 c2 c3"}
QUIET_WAIT=${QUIET_WAIT:-5}
EVICT_MAX=${EVICT_MAX:-1}
seed_given=${SEED:+1}
SEED=${SEED:-$(date +%s)}
PROBE_MS=20

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$repo/BENCHMARKS.md}
target=${CARGO_TARGET_DIR:-$repo/target}
command_line="${FIXTURES:+FIXTURES=$FIXTURES }DURATION=$DURATION ROUNDS=$ROUNDS"
[[ $SERVER_THREADS == 2 ]] || command_line+=" SERVER_THREADS=$SERVER_THREADS"
[[ $SERVER_CPUS == 1 && $CLIENT_CPU == 0 ]] || command_line+=" SERVER_CPUS=$SERVER_CPUS CLIENT_CPU=$CLIENT_CPU"
[[ $SERVERS == "mmap-serve serve_dir nginx_aio nginx" ]] || command_line+=" SERVERS=\"$SERVERS\""
[[ $WORKLOADS == "c1 c2 c3" ]] || command_line+=" WORKLOADS=\"$WORKLOADS\""
[[ -z $seed_given ]] || command_line+=" SEED=$SEED"
command_line+=" bench/cold.sh"

log() { printf '[cold %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# /var/tmp, not /tmp: /tmp is a tmpfs on many systems, and the default fixtures live in here.
tmp=$(mktemp -d /var/tmp/mmap-serve-cold.XXXXXX)
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
    # Clients of an interrupted run (wrk, the probe, curl): this script's children, by id.
    local child
    for child in $(jobs -p); do kill -TERM "$child" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $tmp (raw results in results.txt, client output in runs/)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
"$nginx_bin" -V 2>&1 | grep -q -- --with-threads || die "$nginx_bin is built without --with-threads (aio threads)"

# --- servers' binaries --------------------------------------------------------------------------------------
log "building the serve and serve_dir examples (release)"
(cd "$repo" && cargo build --release --quiet --example serve --example serve_dir)
bin=$target/release/examples

# --- fixtures -----------------------------------------------------------------------------------------------
big4g=$((4 << 30))
big1g=$((1 << 30))
fixtures=${FIXTURES:-$tmp/fixtures}
mkdir -p "$fixtures"
fixtures=$(cd "$fixtures" && pwd)
fs_type=$(stat -f -c %T "$fixtures")
case $fs_type in
tmpfs | ramfs) die "$fixtures is on $fs_type: a cold cache needs a real disk (set FIXTURES)" ;;
esac
fixtures_ok() {
    [[ -f $fixtures/.complete && $(stat -c %s "$fixtures/big4g.bin") == "$big4g" &&
        $(stat -c %s "$fixtures/big1g.bin") == "$big1g" && $(stat -c %s "$fixtures/hot.bin") == 4096 ]]
}
if ! fixtures_ok 2>/dev/null; then
    avail=$(df -B1 --output=avail "$fixtures" | tail -1)
    ((avail > big4g + big1g + (512 << 20))) || die "$fixtures: 5.5 GiB free needed, $avail bytes free"
    log "creating fixtures in $fixtures ($fs_type): 4 KiB, 1 GiB and 4 GiB of random bytes"
    rm -f "$fixtures/.complete"
    head -c 4096 /dev/urandom >"$fixtures/hot.bin"
    head -c "$big1g" /dev/urandom >"$fixtures/big1g.bin"
    head -c "$big4g" /dev/urandom >"$fixtures/big4g.bin"
    sync "$fixtures/big1g.bin" "$fixtures/big4g.bin" # dirty pages cannot be evicted
    chmod a+rX "$fixtures" "$fixtures"/*.bin          # nginx's worker runs as an unprivileged user
    touch "$fixtures/.complete"
fi
chmod a+rx "$tmp"
mkdir -p "$tmp/runs"

# The disk under the fixtures, for the report and for its read counters in /proc/diskstats.
disk_source=$(findmnt -n -o SOURCE -T "$fixtures" 2>/dev/null || true)
disk_name="" disk_desc="unknown (no block device found under $fixtures)"
if [[ -b $disk_source ]]; then
    disk_name=$(basename "$(readlink -f "$disk_source")")
    whole=$disk_source
    parent=$(lsblk -n -d -o PKNAME "$disk_source" 2>/dev/null | head -1 || true)
    [[ -z $parent ]] || whole=/dev/$parent
    disk_desc=$(lsblk -n -d -o NAME,TYPE,SIZE,ROTA,TRAN,MODEL "$whole" 2>/dev/null |
        awk '{ printf "%s (%s, %s, rotational=%s", $1, $2, $3, $4; if ($5 != "") printf ", %s", $5
               $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); if ($0 != "") printf ", model %s", $0; printf ")" }')
    [[ -n $disk_desc ]] || disk_desc=$disk_name
    queue=/sys/block/$(basename "$whole")/queue
    if [[ -r $queue/read_ahead_kb ]]; then
        disk_desc+=", read_ahead_kb $(<"$queue/read_ahead_kb"), scheduler $(sed 's/.*\[\(.*\)\].*/\1/' "$queue/scheduler")"
    fi
fi

# --- helpers in python: page cache residency and eviction, the probe, the request checks -------------------
pagecache=$repo/bench/pagecache.py

cat >"$tmp/diskcheck.py" <<'EOF'
"""diskcheck.py FILE SEED COUNT SPAN: evicts FILE, then times COUNT preads of SPAN bytes at random aligned
offsets, one at a time, with readahead off (POSIX_FADV_RANDOM); evicts it again. Prints
"DISK p50_ms p99_ms max_ms". Shows how fast the disk answers a cold read right now (under a virtual disk the
host's cache may answer instead)."""
import os, random, sys, time

path, seed, count, span = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
fd = os.open(path, os.O_RDONLY)
slots = os.fstat(fd).st_size // span
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
times = []
for _ in range(count):
    offset = rng.randrange(slots) * span
    start = time.perf_counter()
    if len(os.pread(fd, span, offset)) != span:
        sys.exit("short read")
    times.append((time.perf_counter() - start) * 1000)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
times.sort()
print(f"DISK {times[len(times) // 2]:.2f} {times[min(len(times) - 1, len(times) * 99 // 100)]:.2f} {times[-1]:.2f}")
EOF

cat >"$tmp/probe.py" <<'EOF'
"""probe.py PORT PATH SECONDS INTERVAL_MS SIZE: GETs PATH every INTERVAL_MS on one keep-alive connection for
SECONDS (a late answer is followed at once by the next request, missed ticks are not made up); prints
"PROBE count errors p50_ms p99_ms max_ms". A status other than 200, a body of another size, or a socket
error counts as an error (and the connection is made again)."""
import http.client, sys, time

port, path, seconds, interval, size = (int(sys.argv[1]), sys.argv[2], float(sys.argv[3]),
                                       float(sys.argv[4]) / 1000, int(sys.argv[5]))

def connect():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    return conn

def get(conn):
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status == 200 and len(body) == size

conn = connect()
get(conn)  # not timed: the connection's first request
latencies, errors = [], 0
end = time.monotonic() + seconds
tick = time.monotonic()
while True:
    now = time.monotonic()
    if now >= end:
        break
    if tick > now:
        time.sleep(tick - now)
    start = time.perf_counter()
    try:
        ok = get(conn)
    except (OSError, http.client.HTTPException):
        ok = False
        conn.close()
        try:
            conn = connect()
        except OSError:
            time.sleep(interval)
    latencies.append((time.perf_counter() - start) * 1000)
    errors += not ok
    tick = max(tick + interval, time.monotonic())
latencies.sort()
def pct(p):
    return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else 0.0
print(f"PROBE {len(latencies)} {errors} {pct(50):.3f} {pct(99):.3f} {latencies[-1] if latencies else 0:.3f}")
EOF

cat >"$tmp/verify.py" <<'EOF'
"""verify.py PORT ROOT: the answers the workloads rely on, byte for byte (a few small reads of the big
files, made before their eviction)."""
import http.client, sys

port, root = int(sys.argv[1]), sys.argv[2]

def get(path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.headers, body

def file_bytes(name, start, length):
    with open(f"{root}/{name}", "rb") as f:
        f.seek(start)
        return f.read(length)

status, _, body = get("/hot.bin", {})
if status != 200 or body != file_bytes("hot.bin", 0, 4096):
    sys.exit(f"FAIL GET /hot.bin: status {status}, {len(body)} bytes")
for name, size, start, length in [("big4g.bin", 4 << 30, (4 << 30) - 65536, 65536),
                                  ("big4g.bin", 4 << 30, 3 << 30, 4096),
                                  ("big1g.bin", 1 << 30, 0, 4096)]:
    end = start + length - 1
    status, headers, body = get(f"/{name}", {"Range": f"bytes={start}-{end}"})
    want = f"bytes {start}-{end}/{size}"
    if status != 206 or headers["Content-Range"] != want or body != file_bytes(name, start, length):
        sys.exit(f"FAIL Range {start}-{end} of /{name}: status {status}, "
                 f"Content-Range {headers['Content-Range']}, {len(body)} bytes")
EOF

# The range workloads: wrk -s range.lua URL -- SEED SPAN FILE_SIZE. Offsets are aligned to the span, drawn with
# math.random seeded per run and thread; an answer that is not a 206 with SPAN bytes counts as an error.
cat >"$tmp/range.lua" <<'EOF'
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
init = function(args)
  span = tonumber(args[2])
  slots = math.floor(tonumber(args[3]) / span)
  math.randomseed(tonumber(args[1]) * 1000 + (tonumber(id) or 0))
  math.random(); math.random()
  bad = 0
end
request = function()
  local first = (math.random(slots) - 1) * span
  return wrk.format("GET", nil, { Range = string.format("bytes=%.0f-%.0f", first, first + span - 1) })
end
response = function(status, headers, body)
  if status ~= 206 or #body ~= span then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local nbad = 0
  for _, thread in ipairs(threads) do nbad = nbad + (thread:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format("WRKRESULT" .. string.rep(" %.0f", 12) .. "\n", summary.requests, summary.bytes,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, nbad,
    latency:percentile(50), latency:percentile(99), latency.max))
end
EOF

# --- servers ------------------------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_nginx_conf() {
    local name=$1 p=$2 conf=$tmp/$1 aio=""
    [[ $name == nginx_aio ]] && aio="aio threads;"
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
    $aio
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
}

# start_server NAME: a fresh process for one run; sets pid[NAME] and work_pid (the process that serves:
# nginx's worker, the Rust servers themselves).
start_server() {
    local name=$1 p=${port[$1]} tries=0
    # Another program on this shared machine may hold the port for a while: take another one then.
    while port_busy "$p"; do
        tries=$((tries + 1))
        ((tries <= 20)) || die "127.0.0.1:${port[$name]} and 20 ports above it are in use (set BASE_PORT)"
        p=$((p + 10))
    done
    if ((p != port[$name])); then
        log "127.0.0.1:${port[$name]} is in use: $name listens on 127.0.0.1:$p"
        port[$name]=$p
    fi
    [[ $name != nginx* ]] || write_nginx_conf "$name" "$p"
    case $name in
    nginx | nginx_aio)
        taskset -c "$SERVER_CPUS" "$nginx_bin" -e "$tmp/$name/error.log" -p "$tmp/$name" \
            -c "$tmp/$name/nginx.conf" >>"$tmp/$name.out" 2>&1 &
        ;;
    mmap-serve | serve_dir)
        local exe=serve
        [[ $name == serve_dir ]] && exe=serve_dir
        taskset -c "$SERVER_CPUS" "$bin/$exe" --root "$fixtures" --listen "127.0.0.1:$p" \
            --threads "$SERVER_THREADS" >>"$tmp/$name.out" 2>&1 &
        ;;
    *) die "unknown server $name" ;;
    esac
    pid[$name]=$!
    for _ in $(seq 300); do
        curl -fs -o /dev/null "http://127.0.0.1:$p/hot.bin" && break
        kill -0 "${pid[$name]}" 2>/dev/null || { cat "$tmp/$name.out" >&2; die "$name exited"; }
        sleep 0.1
    done
    curl -fs -o /dev/null "http://127.0.0.1:$p/hot.bin" || die "$name does not answer"
    work_pid=${pid[$name]}
    if [[ $name == nginx* ]]; then
        work_pid=$(pgrep -P "${pid[$name]}" | head -1)
        [[ -n $work_pid ]] || die "no nginx worker"
    fi
    python3 "$tmp/verify.py" "$p" "$fixtures" || die "$name failed verification"
}

stop_server() {
    local name=$1
    kill -TERM "${pid[$name]}" 2>/dev/null || true
    wait "${pid[$name]}" 2>/dev/null || true
    unset "pid[$name]"
    # nginx's worker leaves after its master; its mappings and open files with it.
    for _ in $(seq 100); do
        [[ -e /proc/$work_pid ]] || return 0
        sleep 0.1
    done
    die "$name (pid $work_pid) did not exit"
}

# --- measurements -------------------------------------------------------------------------------------------
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
# Bytes a process (all its threads) made the block layer read so far (page faults and readahead included).
process_read_bytes() {
    awk '$1 == "read_bytes:" { print $2 }' "/proc/$1/io"
}
# Bytes read from the fixtures' disk so far, by anyone.
disk_read_bytes() {
    if [[ -n $disk_name ]]; then
        awk -v d="$disk_name" '$3 == d { printf "%.0f\n", $6 * 512; found = 1 } END { if (!found) print 0 }' /proc/diskstats
    else
        echo 0
    fi
}
# Waits up to QUIET_WAIT seconds until the machine is idle (under 5% of a core over half a second).
wait_quiet() {
    local start=$SECONDS before after
    while :; do
        before=$(machine_busy)
        sleep 0.5
        after=$(machine_busy)
        ((after - before <= hz / 20)) && return 0
        ((SECONDS - start < QUIET_WAIT)) || return 0
        sleep 0.5
    done
}

# run_workload SERVER WORKLOAD SEED DIR -> prints "key=value ..." of the clients' results and CPU ticks.
run_workload() {
    local name=$1 workload=$2 seed=$3 dir=$4 url="http://127.0.0.1:${port[$1]}"
    local before after
    children_cpu
    before=$children_ticks
    case $workload in
    c1 | c3)
        local conns=16 span=65536 probe=""
        if [[ $workload == c3 ]]; then conns=64 span=4096; fi
        if [[ $workload == c1 ]]; then
            python3 "$tmp/probe.py" "${port[$name]}" /hot.bin "$DURATION" "$PROBE_MS" 4096 >"$dir/probe.out" 2>&1 &
            probe=$!
        fi
        wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 30s -s "$tmp/range.lua" "$url/big4g.bin" \
            -- "$seed" "$span" "$big4g" >"$dir/wrk.out" 2>&1 || true
        [[ -z $probe ]] || wait "$probe" || true
        local r
        r=$(grep '^WRKRESULT' "$dir/wrk.out") || { cat "$dir/wrk.out" >&2; die "wrk failed"; }
        read -r _ requests bytes micros connect read write status timeout bad p50 p99 max <<<"$r"
        printf 'requests=%s bytes=%s micros=%s sock_errors=%s status_errors=%s lat_p50=%s lat_p99=%s lat_max=%s' \
            "$requests" "$bytes" "$micros" $((connect + read + write + timeout)) $((status + bad)) "$p50" "$p99" "$max"
        if [[ -n $probe ]]; then
            r=$(grep '^PROBE' "$dir/probe.out") || { cat "$dir/probe.out" >&2; die "the probe failed"; }
            read -r _ count errors p50 p99 max <<<"$r"
            printf ' probe_count=%s probe_errors=%s probe_p50=%s probe_p99=%s probe_max=%s' \
                "$count" "$errors" "$p50" "$p99" "$max"
        fi
        ;;
    c2)
        local i curls=()
        for i in 1 2 3 4; do
            curl -sS -o /dev/null --max-time "$DURATION" \
                -w '%{http_code} %{size_download} %{time_total} %{exitcode}\n' \
                "$url/big1g.bin" >"$dir/curl.$i" 2>"$dir/curl.$i.err" &
            curls+=($!)
        done
        for i in "${curls[@]}"; do wait "$i" || true; done
        # MB/s over the time until the last download ended (finished or cut at DURATION: curl's exit 28).
        # %.0f, not %d: mawk's %d stops at 2^31.
        awk -v size="$big1g" '
            { n++; bytes += $2; if ($3 > secs) secs = $3; if ($1 != 200) bad++; else if ($2 == size) full++
              if ($4 != 0 && $4 != 28) failed++ }
            END { printf "requests=%d bytes=%.0f micros=%.0f sock_errors=%d status_errors=%d complete=%d",
                  n, bytes, secs * 1e6, 4 - n + failed, bad, full }' "$dir"/curl.[1-4]
        ;;
    esac
    children_cpu
    after=$children_ticks
    printf ' client_ticks=%s\n' $((after - before))
}

resident_fields() { # PREFIX OUTPUT-OF-pagecache.py -> "PREFIX_4g=... PREFIX_1g=..."
    awk -v p="$1" '$1 == "big4g.bin" { k = "4g" } $1 == "big1g.bin" { k = "1g" }
        { printf "%s_before_%s=%s %s_after_%s=%s pages_%s=%s ", p, k, $2, p, k, $3, k, $4 }' <<<"$2"
}

# --- the runs -----------------------------------------------------------------------------------------------
read -ra names <<<"$SERVERS"
read -ra workloads <<<"$WORKLOADS"
i=0
for name in "${names[@]}"; do
    port[$name]=$((BASE_PORT + i))
    i=$((i + 1))
done
# From here on this script and its children (wrk, curl, the probe) stay on the client's core.
taskset -pc "$CLIENT_CPU" $$ >/dev/null
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# How fast a cold read is right now, before and after the runs.
disk_check() {
    python3 "$tmp/diskcheck.py" "$fixtures/big4g.bin" "$1" 200 65536 | cut -d' ' -f2-
}
# Before anything is measured, the page cache is filled once with both big files and emptied again. On a
# virtual machine whose host has taken back the guest's idle memory, the first run to fill the page cache also
# pays for the host backing that memory again, which belongs to no server: without this step, the first run
# of four bench invocations here (mmap-serve's, each time) cost 1.3-2.3x the server CPU per request of its
# later runs of the same workload.
log "priming: reading the 4 GiB and 1 GiB files once, unmeasured, then evicting them"
python3 "$pagecache" warm "$fixtures/big4g.bin" "$fixtures/big1g.bin" >/dev/null
python3 "$pagecache" evict "$fixtures/big4g.bin" "$fixtures/big1g.bin" >/dev/null
disk_start=$(disk_check "$SEED")
log "disk check: 200 random 64 KiB preads of the evicted 4 GiB file, p50 / p99 / max ms: $disk_start"
results=$tmp/results.txt
: >"$results"
run=0
total=$((ROUNDS * ${#workloads[@]} * ${#names[@]}))
log "$total runs of ${DURATION}s; fixtures in $fixtures; load average $load_start"
for ((round = 1; round <= ROUNDS; round++)); do
    for workload in "${workloads[@]}"; do
        # Rotate the order every round so no server always runs first or last.
        for ((k = 0; k < ${#names[@]}; k++)); do
            name=${names[$(((k + round - 1) % ${#names[@]}))]}
            run=$((run + 1))
            seed=$((SEED + run))
            dir=$tmp/runs/$run-$workload-$name
            mkdir -p "$dir"
            wait_quiet
            start_server "$name"
            cat "$fixtures/hot.bin" >/dev/null
            evicted=$(python3 "$pagecache" evict "$fixtures/big4g.bin" "$fixtures/big1g.bin")
            # Once more if something (readahead still in flight, another reader) left pages behind.
            if awk -v max="$EVICT_MAX" '$3 * 100 > $4 * max { bad = 1 } END { exit !bad }' <<<"$evicted"; then
                log "still resident after eviction: $(tr '\n' ' ' <<<"$evicted"); evicting again"
                sleep 1
                again=$(python3 "$pagecache" evict "$fixtures/big4g.bin" "$fixtures/big1g.bin")
                evicted=$(paste -d' ' <(cut -d' ' -f1-2 <<<"$evicted") <(cut -d' ' -f3-4 <<<"$again"))
            fi
            hot=$(python3 "$pagecache" resident "$fixtures/hot.bin" | cut -d' ' -f3)
            load=$(cut -d' ' -f1 /proc/loadavg)
            busy_before=$(machine_busy)
            window_start=${EPOCHREALTIME/./}
            server_before=$(process_cpu "$work_pid")
            io_before=$(process_read_bytes "$work_pid")
            disk_before=$(disk_read_bytes)
            result=$(run_workload "$name" "$workload" "$seed" "$dir")
            disk_after=$(disk_read_bytes)
            io_after=$(process_read_bytes "$work_pid")
            server_after=$(process_cpu "$work_pid")
            busy_after=$(machine_busy)
            window=$((${EPOCHREALTIME/./} - window_start))
            after_run=$(python3 "$pagecache" resident "$fixtures/big4g.bin" "$fixtures/big1g.bin")
            stop_server "$name"
            client_ticks=${result##*client_ticks=}
            micros=${result#*micros=}
            micros=${micros%% *}
            ((micros > 0)) || micros=$((DURATION * 1000000))
            # Over the window the counters were read in (a little longer than the clients' run).
            foreign=$((busy_after - busy_before - (server_after - server_before) - client_ticks))
            foreign_pct=$((foreign * 100 * 1000000 / (hz * window)))
            ((foreign_pct < 0)) && foreign_pct=0
            line="round=$round workload=$workload server=$name seed=$seed $result"
            line+=" $(resident_fields evict "$evicted")"
            line+=" $(awk '{ printf "run_after_%s=%s ", $1 == "big4g.bin" ? "4g" : "1g", $3 }' <<<"$after_run")"
            line+="hot_resident=$hot server_ticks=$((server_after - server_before))"
            line+=" server_read=$((io_after - io_before)) disk_read=$((disk_after - disk_before))"
            line+=" foreign_pct=$foreign_pct load=$load"
            echo "$line" >>"$results"
            requests=${result#requests=}
            requests=${requests%% *}
            bytes=${result#*bytes=}
            bytes=${bytes%% *}
            probe=""
            if [[ $result == *probe_p99=* ]]; then
                probe=${result#*probe_p99=}
                probe=", probe p99 ${probe%% *} ms"
            fi
            rate="$((requests * 1000000 / micros)) req/s"
            [[ $workload != c2 ]] || rate="$((bytes / micros)) MB/s"
            log "run $run/$total round $round $workload $name: $rate$probe; resident after eviction" \
                "$(awk '{ printf "%s %.1f%% ", $1, $3 * 100 / $4 }' <<<"$evicted"); server read" \
                "$(((io_after - io_before) >> 20)) MiB; load $load, foreign CPU ${foreign_pct}%"
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
run_date=$(date -u '+%Y-%m-%d %H:%M UTC')
disk_end=$(disk_check "$((SEED - 1))")
log "disk check: p50 / p99 / max ms: $disk_end"

# --- report -------------------------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
wrk_version=$( (wrk -v 2>&1 || true) | head -1 | awk '{ print $1, $2 }')
curl_version=$(curl -V | head -1 | awk '{ print $1, $2 }')
rustc_version=$(rustc -V)
commit=$(cd "$repo" && git rev-parse --short HEAD)
[[ -z $(cd "$repo" && git status --porcelain -- src examples Cargo.toml) ]] || commit+=" (with uncommitted changes)"
[[ -f $OUT ]] || touch "$OUT"

export DURATION ROUNDS SERVER_THREADS SERVER_CPUS CLIENT_CPU SERVERS WORKLOADS PROBE_MS SEED EVICT_MAX
export command_line fs_type disk_desc cpu mem nginx_version wrk_version curl_version rustc_version commit
export load_start load_end disk_start disk_end run_date hz
python3 - "$results" "$OUT" <<'EOF'
import os, statistics, sys
from collections import defaultdict

results, out = sys.argv[1], sys.argv[2]
env = os.environ
servers = env["SERVERS"].split()
workloads = env["WORKLOADS"].split()
rounds, duration = int(env["ROUNDS"]), env["DURATION"]
labels = {"mmap-serve": f"mmap-serve (`serve --threads {env['SERVER_THREADS']}`)",
          "serve_dir": f"axum + ServeDir ({env['SERVER_THREADS']} workers)",
          "nginx_aio": "nginx `sendfile` + `aio threads`", "nginx": "nginx `sendfile`"}
short = {"mmap-serve": "mmap-serve", "serve_dir": "ServeDir", "nginx_aio": "nginx aio", "nginx": "nginx"}
titles = {"c1": "C1: random 64 KiB ranges of the 4 GiB file, 16 conns (+ probe), req/s",
          "c2": "C2: full GET of the 1 GiB file, 4 conns, MB/s",
          "c3": "C3: random 4 KiB ranges of the 4 GiB file, 64 conns, req/s"}

runs = defaultdict(dict)  # (workload, server) -> round -> run
for line in open(results):
    r = dict(kv.split("=", 1) for kv in line.split())
    for k, v in r.items():
        if k not in ("workload", "server"):
            r[k] = float(v)
    secs = r["micros"] / 1e6 or 1
    r["value"] = r["bytes"] / secs / 1e6 if r["workload"] == "c2" else r["requests"] / secs
    r["errors"] = r["sock_errors"] + r["status_errors"]
    runs[r["workload"], r["server"]][int(r["round"])] = r
every = [r for rs in runs.values() for r in rs.values()]

def fmt(v, workload):
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

def med(values):
    values = list(values)
    return statistics.median(values) if values else None

def paired(workload, other):
    ours, theirs = runs.get((workload, "mmap-serve"), {}), runs.get((workload, other), {})
    ratios = {k: ours[k]["value"] / theirs[k]["value"] for k in ours.keys() & theirs.keys() if theirs[k]["value"]}
    return ratios

def ratio_cell(ratios):
    if not ratios:
        return "n/a"
    v = sorted(ratios.values())
    return f"{statistics.median(v):.2f}x [{v[0]:.2f}–{v[-1]:.2f}]" if len(v) > 1 else f"{v[0]:.2f}x"

def pct(r, key, pages):
    return 100 * r[key] / r[pages] if r[pages] else 0

others = [o for o in ("serve_dir", "nginx_aio", "nginx") if o in servers and "mmap-serve" in servers]
lines = []
w = lines.append
w("## Cold page cache")
w("")
w(f"Generated by `bench/cold.sh` (issue 13): what the servers do when the data is not in memory. Every run "
  f"starts a fresh server process (on core(s) `{env['SERVER_CPUS']}`; the clients on core "
  f"`{env['CLIENT_CPU']}`), checks its answers, evicts the 4 GiB and 1 GiB files from the page cache "
  f"(`posix_fadvise(POSIX_FADV_DONTNEED)`, after `fdatasync`), measures with `mincore(2)` how much of them "
  f"is still resident, then runs one workload for {duration} s: ")
w("")
w("- C1: wrk, 16 connections, random 64 KiB ranges (aligned) of the evicted 4 GiB file; beside it a probe "
  f"(python `http.client`) fetches a hot 4 KiB file every {env['PROBE_MS']} ms on its own keep-alive "
  "connection: its latency is what every other client of a stalled worker waits;")
w(f"- C2: 4 curl clients each GET the whole evicted 1 GiB file at once (cut at {duration} s); MB/s (10^6 "
  "bytes) received by the four together over the time until the last one ended. The four read the same "
  "pages, so the disk reads the file once;")
w("- C3: wrk, 64 connections, random 4 KiB ranges (aligned) of the evicted 4 GiB file.")
w("")
w(f"{rounds} round{'s' if rounds != 1 else ''}; within a round each workload runs on every server in turn (order rotated each round). "
  "The wrk script seeds `math.random` per run and thread (fresh offsets every run, so no run reads what a "
  "previous one brought into the page cache, nor into a host's cache under a virtual disk), and counts every "
  "answer that is not a 206 with the requested length as an error, as it counts socket errors and "
  "timeouts (30 s). The disk is shared and noisy: compare within a round (paired ratios). How fast the disk "
  "answered a cold read is measured before and after the runs (Setup: disk check); under a virtual disk "
  "the host's page cache may hold what the guest evicted, and then a cold read is much cheaper than one "
  "from the device. Before the first run both big files are read once and evicted again, unmeasured, so "
  "that no run pays for the host backing the guest's page-cache memory again after a quiet spell.")
w("")
w("### Medians")
w("")
w("| workload | " + " | ".join(labels[s] for s in servers) + " | "
  + " | ".join(f"mmap-serve / {short[o]} (paired)" for o in others) + " |")
w("|---|" + "---:|" * (len(servers) + len(others)))
for workload in workloads:
    cells = []
    for s in servers:
        rs = runs[workload, s].values()
        cell = fmt(med(r["value"] for r in rs), workload)
        errors = sum(r["errors"] for r in rs)
        cells.append(cell + (f" ({errors:.0f} errors)" if errors else ""))
    w(f"| {titles[workload]} | " + " | ".join(cells) + " | "
      + " | ".join(ratio_cell(paired(workload, o)) for o in others) + " |")
w("")
w("Paired ratios: each round's mmap-serve result divided by the other server's in the same round, the median "
  "over rounds with the lowest and highest in brackets. Errors: the sum over the rounds.")
w("")
if "c1" in workloads:
    w("### Hot-file probe during C1")
    w("")
    w(f"Latency of a GET of a resident 4 KiB file every {env['PROBE_MS']} ms on its own connection while C1 "
      "runs, in ms: the median over rounds of each run's p50 and p99, and the highest max of any round; the "
      "rounds' p99 in brackets.")
    w("")
    w("| server | probe p50 | probe p99 | probe max | p99 per round | probes (errors) |")
    w("|---|---:|---:|---:|---:|---:|")
    def ms(v):
        return "—" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
    for s in servers:
        rs = [runs["c1", s][k] for k in sorted(runs["c1", s])]
        if not rs:
            continue
        w(f"| {labels[s]} | {ms(med(r['probe_p50'] for r in rs))} | {ms(med(r['probe_p99'] for r in rs))} | "
          f"{ms(max(r['probe_max'] for r in rs))} | " + ", ".join(ms(r["probe_p99"]) for r in rs)
          + f" | {sum(r['probe_count'] for r in rs):.0f} ({sum(r['probe_errors'] for r in rs):.0f}) |")
    w("")
w("### Every run")
w("")
w("Resident: share of the 4 GiB file (C2: the 1 GiB file) in the page cache right after the eviction, and "
  "after the run. Server read: what the server process made the disk read during the run (`read_bytes` "
  "of `/proc/PID/io`, nginx: its worker), in MiB, and per request (C2: per byte sent). A server read near "
  "the file's size with the file 100% resident after the run means its reads brought in far more than was "
  "asked (for a mapping: the kernel's read-around on a page fault, up to `read_ahead_kb` at a time) and "
  "that the rest of its run was served from memory. Server CPU: CPU time of the server process (all its "
  "threads; nginx: its worker) over the run, in % of one core, and per request (C2: per MB sent), in "
  "microseconds: a server whose cores are busy is held back by its own work, not by the disk. Load: "
  "1-minute load average before the run; other CPU: CPU time used by processes other than the server and "
  "the clients during the run, in % of one core.")
w("")
w("| workload | round | server | result | errors | wrk latency p50 / p99 (ms); C2: downloads done | probe p50 / p99 / max (ms) | "
  "resident after eviction → after run | server read | server CPU | load | other CPU |")
w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for workload in workloads:
    for rnd in range(1, rounds + 1):
        for s in servers:
            r = runs[workload, s].get(rnd)
            if r is None:
                continue
            k = "1g" if workload == "c2" else "4g"
            if workload == "c2":
                lat = f"{r['complete']:.0f}/4 complete"
                read = f"{r['server_read'] / 2**20:,.0f} MiB ({r['server_read'] / r['bytes']:.2f}x)" if r["bytes"] else "—"
            else:
                lat = f"{r['lat_p50'] / 1000:.1f} / {r['lat_p99'] / 1000:.1f}"
                read = (f"{r['server_read'] / 2**20:,.0f} MiB ({r['server_read'] / r['requests'] / 1024:,.0f} KiB)"
                        if r["requests"] else "—")
            probe = (f"{r['probe_p50']:.1f} / {r['probe_p99']:.1f} / {r['probe_max']:.0f}"
                     if "probe_p50" in r else "")
            cpu_us = r["server_ticks"] * 1e6 / float(env["hz"])
            units = r["bytes"] / 1e6 if workload == "c2" else r["requests"]
            cpu = f"{cpu_us / (r['micros'] or 1) * 100:.0f}%" + (f" ({cpu_us / units:,.0f} µs)" if units else "")
            w(f"| {workload.upper()} | {rnd} | {short[s]} | {fmt(r['value'], workload)} | {r['errors']:.0f} | "
              f"{lat} | {probe} | {pct(r, 'evict_after_' + k, 'pages_' + k):.2f}% → "
              f"{pct(r, 'run_after_' + k, 'pages_' + k):.1f}% | {read} | {cpu} | {r['load']:.2f} | "
              f"{r['foreign_pct']:.0f}% |")
w("")
w("### Residency")
w("")
def span(values, digits):
    values = sorted(values)
    return f"{values[0]:.{digits}f}–{values[-1]:.{digits}f}%" if values else "—"
for k, name in (("4g", "4 GiB"), ("1g", "1 GiB")):
    w(f"- {name} file: {span((pct(r, 'evict_before_' + k, 'pages_' + k) for r in every), 1)} resident "
      f"before the evictions, {span((pct(r, 'evict_after_' + k, 'pages_' + k) for r in every), 3)} after "
      f"them ({max((r['evict_after_' + k] for r in every), default=0):.0f} pages at most).")
hot = [r["hot_resident"] for r in every]
w(f"- Hot 4 KiB file: resident before {sum(hot):.0f} of {len(hot)} runs.")
w("")
w("### Setup")
w("")
loads = sorted(r["load"] for r in every)
w(f"- Machine: {os.cpu_count()} cores ({env['cpu']}), {env['mem']}, Linux {os.uname().release}; disk "
  f"{env['disk_desc']}; fixtures on {env['fs_type']}.")
w(f"- Load average (1, 5, 15 min): {env['load_start']} at the start, {env['load_end']} at the end; before "
  f"the runs {loads[0]:.2f}–{loads[-1]:.2f} (median {statistics.median(loads):.2f}). The machine was shared.")
w(f"- Date: {env['run_date']}; mmap-serve at {env['commit']}; "
  f"{env['rustc_version']}; {env['wrk_version']} (`-t1`); {env['curl_version']}; {env['nginx_version']}.")
w(f"- Servers: `examples/serve.rs` (mmap-serve, its default configuration) and `examples/serve_dir.rs` "
  f"(tower-http ServeDir, 64 KiB reads on the blocking pool), both `--threads {env['SERVER_THREADS']}`, "
  "release build; nginx one worker, `sendfile on` with or without `aio threads` (default pool: 32 threads), "
  "`tcp_nodelay on`, `open_file_cache`, `access_log off`. All on 127.0.0.1.")
def disk(v):
    p50, p99, mx = v.split()
    return f"p50 {p50} ms, p99 {p99} ms, max {mx} ms"
w(f"- Disk check (200 random 64 KiB `pread`s of the evicted 4 GiB file, one at a time, readahead off): "
  f"{disk(env['disk_start'])} before the runs, {disk(env['disk_end'])} after them.")
w(f"- Seeds: run N used {env['SEED']} + N.")
w("")
w("Command:")
w("")
w("```sh")
w(env["command_line"])
w("```")

# Replace the section (up to the next heading of level 1 or 2) or append it.
old = open(out).read().splitlines() if os.path.getsize(out) else []
start = next((i for i, l in enumerate(old) if l.strip() == "## Cold page cache"), None)
if start is None:
    while old and not old[-1].strip():
        old.pop()
    new = old + ([""] if old else []) + lines
else:
    end = next((i for i in range(start + 1, len(old)) if old[i].startswith(("# ", "## "))), len(old))
    tail = old[end:]
    new = old[:start] + lines + ([""] + tail if tail else [])
open(out, "w").write("\n".join(new) + "\n")
EOF
log "wrote the Cold page cache section of $OUT"
