#!/usr/bin/env bash
# kv_vs_etcd.sh: sctld's store against Debian's etcd, in one run, as one table.
#
# Why: issue 2 sets cubestore's goals relative to etcd (>= 3x put throughput at 64
# connections with p99 not above etcd's, single-client put p50 < 0.5 ms, watch p99
# < 5 ms at 1,000 watchers, RSS after 100k keys < half of etcd's).  Ratios measured
# in the same run on the same machine are the only fair way to state them.
#
# How: both servers run single-member on loopback, data dirs side by side in one
# temp dir on the same disk, both fsyncing (etcd by default, sctld always).  Both are
# driven through their HTTP/JSON interface (sctld's /v1 API, etcd's v3 gRPC gateway)
# with 16-byte keys and 256-byte values, by the same load generators: wrk with
# bench/wrk_kv.lua for request throughput/latency, build-bench/bench/kvbench (C,
# epoll) for the exact 100k-key load and for watch delivery latency.  Phases run in
# the order: load 100k keys (then read VmRSS), put 1 conn, put 64 conns,
# linearizable get 64 conns, watch; each phase runs sctld then etcd.
#
# Usage: bench/kv_vs_etcd.sh     (builds build-bench, optimised, no sanitizers)
# Environment: SC_BENCH_BUILD=dir (default build-bench), DURATION=10 (s per wrk
# run), WATCHERS=1000, WATCH_PUTS=100, WATCH_INTERVAL_MS=20, KEEP=1 keeps the temp
# dir (logs of every phase).  Takes about 2-3 minutes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SC_BENCH_BUILD:-$root/build-bench}
duration=${DURATION:-10}
watchers=${WATCHERS:-1000}
watch_puts=${WATCH_PUTS:-100}
watch_interval_ms=${WATCH_INTERVAL_MS:-20}
keys=100000
lua=$root/bench/wrk_kv.lua

for tool in wrk etcd curl meson ninja; do
    command -v "$tool" >/dev/null || {
        echo "kv_vs_etcd: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    }
done

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" src/sctld/sctld bench/kvbench >/dev/null
sctld_bin=$build/src/sctld/sctld
kvbench=$build/bench/kvbench

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((watchers + 64)) ]; then
    echo "kv_vs_etcd: need $((watchers + 64)) file descriptors, ulimit -n is $(ulimit -n)" >&2
    exit 1
fi

# /var/tmp rather than /tmp: it must be a real disk, or fsync costs nothing.
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/sc-bench.XXXXXX")
fstype=$(df --output=fstype "$tmp" | tail -1)
if [ "$fstype" = tmpfs ]; then
    rmdir "$tmp"
    echo "kv_vs_etcd: $tmp is on tmpfs, where fsync costs nothing; set TMPDIR to a disk" >&2
    exit 1
fi
sctld_pid=""
etcd_pid=""
cleanup() {
    local pid
    for pid in $sctld_pid $etcd_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $sctld_pid $etcd_pid; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kv_vs_etcd: logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r sctld_port etcd_port etcd_peer_port < <("$kvbench" port 3)
sctld_addr=127.0.0.1:$sctld_port
etcd_addr=127.0.0.1:$etcd_port

"$sctld_bin" --data-dir "$tmp/sctld" --listen "$sctld_addr" --log-level warn \
    >"$tmp/sctld.log" 2>&1 &
sctld_pid=$!
etcd --name bench --data-dir "$tmp/etcd" \
    --listen-client-urls "http://$etcd_addr" --advertise-client-urls "http://$etcd_addr" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$etcd_peer_port" \
    --logger zap --log-level error >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!

wait_healthy() { # name url pid
    local i
    for i in $(seq 100); do
        curl -sf --max-time 1 "$2" 2>/dev/null | grep -q '"ok"\|"true"' && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "kv_vs_etcd: $1 did not become healthy; its log:" >&2
    cat "$tmp/$1.log" >&2
    exit 1
}
wait_healthy sctld "http://$sctld_addr/healthz" "$sctld_pid"
wait_healthy etcd "http://$etcd_addr/health" "$etcd_pid"

declare -A res # res[metric.system] = number
bad=()         # phases with failed requests or lost events

field() { # key line -> value of key=value
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1
}

result_line() { # log file -> its RESULT line, or fail the phase
    local line
    line=$(grep '^RESULT' "$1" || true)
    [ -n "$line" ] || line="RESULT failed=1"
    echo "$line"
}

addr_of() { [ "$1" = sctld ] && echo "$sctld_addr" || echo "$etcd_addr"; }
pid_of() { [ "$1" = sctld ] && echo "$sctld_pid" || echo "$etcd_pid"; }

cpu_ticks() { # pid -> user+system clock ticks of all its threads
    awk '{print $14 + $15}' "/proc/$1/stat"
}

run_wrk() { # metric system threads conns op tag
    local metric=$1 sys=$2 log=$tmp/$1-$2.log line cpu0
    cpu0=$(cpu_ticks "$(pid_of "$sys")")
    wrk -t"$3" -c"$4" -d"${duration}s" --latency -s "$lua" "http://$(addr_of "$sys")/" \
        -- "$sys" "$5" "$6" >"$log" 2>&1 || true
    line=$(result_line "$log")
    # Server CPU per request: robust against other processes taking the cores.
    res[$metric.cpu.$sys]=$(awk -v t="$(($(cpu_ticks "$(pid_of "$sys")") - cpu0))" \
        -v hz="$(getconf CLK_TCK)" -v n="$(field requests "$line")" \
        'BEGIN {if (n > 0) printf "%.1f", t / hz * 1e6 / n}')
    res[$metric.rps.$sys]=$(field rps "$line")
    res[$metric.p50.$sys]=$(awk -v u="$(field p50_us "$line")" 'BEGIN{printf "%.3f", u/1000}')
    res[$metric.p99.$sys]=$(awk -v u="$(field p99_us "$line")" 'BEGIN{printf "%.3f", u/1000}')
    if [ "$(field non2xx "$line")" != 0 ] || [ "$(field sockerr "$line")" != 0 ]; then
        bad+=("$metric/$sys: $line")
    fi
}

echo "kv_vs_etcd: sctld $sctld_addr (pid $sctld_pid), etcd $etcd_addr (pid $etcd_pid)," \
    "data in $tmp ($fstype)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# What one synchronous write costs on this disk: the floor under a durable put.
sync_ms=$(dd if=/dev/zero of="$tmp/sync.probe" bs=4096 count=200 oflag=dsync 2>&1 |
    awk '/copied/ {for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) printf "%.3f", $(i - 1) * 1000 / 200}')
rm -f "$tmp/sync.probe"
t_start=$(date +%s)

echo "kv_vs_etcd: loading $keys keys into each (64 connections)" >&2
for sys in sctld etcd; do
    "$kvbench" load "$sys" "$(addr_of "$sys")" "$keys" 64 >"$tmp/load-$sys.log" 2>&1 || true
    line=$(result_line "$tmp/load-$sys.log")
    res[load.rps.$sys]=$(field puts_per_sec "$line")
    [ "$(field keys "$line")" = "$keys" ] && [ "$(field failures "$line")" = 0 ] ||
        bad+=("load/$sys: $line")
    res[rss.$sys]=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$(pid_of "$sys")/status")
done

echo "kv_vs_etcd: put, 1 connection, ${duration}s each" >&2
for sys in sctld etcd; do run_wrk put1 "$sys" 1 1 put a; done
echo "kv_vs_etcd: put, 64 connections, ${duration}s each" >&2
for sys in sctld etcd; do run_wrk put64 "$sys" 2 64 put b; done
echo "kv_vs_etcd: linearizable get, 64 connections, ${duration}s each" >&2
for sys in sctld etcd; do run_wrk get64 "$sys" 2 64 get g; done

echo "kv_vs_etcd: watch, $watchers watchers x $watch_puts puts" >&2
for sys in sctld etcd; do
    cpu0=$(cpu_ticks "$(pid_of "$sys")")
    "$kvbench" watch "$sys" "$(addr_of "$sys")" "$watchers" "$watch_puts" \
        "$watch_interval_ms" >"$tmp/watch-$sys.log" 2>&1 || true
    line=$(result_line "$tmp/watch-$sys.log")
    # includes opening the watches and the puts themselves
    res[watch.cpu.$sys]=$(awk -v t="$(($(cpu_ticks "$(pid_of "$sys")") - cpu0))" \
        -v hz="$(getconf CLK_TCK)" -v n="$(field deliveries "$line")" \
        'BEGIN {if (n > 0) printf "%.1f", t / hz * 1e6 / n}')
    res[watch.p50.$sys]=$(field p50_ms "$line")
    res[watch.p99.$sys]=$(field p99_ms "$line")
    res[watch.user_p99.$sys]=$(field user_p99_ms "$line")
    res[watch.ack.$sys]=$(field put_ack_p50_ms "$line")
    [ "$(field deliveries "$line")" = "$(field expected "$line")" ] &&
        [ "$(field order_errors "$line")" = 0 ] && [ "$(field failures "$line")" = 0 ] ||
        bad+=("watch/$sys: $line $(grep -v '^RESULT' "$tmp/watch-$sys.log" | head -3)")
done

for sys in sctld etcd; do
    kill -0 "$(pid_of "$sys")" 2>/dev/null || bad+=("$sys exited during the run")
done

# ---- the table --------------------------------------------------------------------
row() { # label sctld etcd goal-kind goal-text
    awk -v l="$1" -v s="${2:-}" -v e="${3:-}" -v k="${4:-}" -v g="${5:-}" 'BEGIN {
        ratio = (s != "" && e != "" && e + 0 > 0) ? sprintf("%.2fx", s / e) : "-"
        met = ""
        if (s == "" || e == "") met = (k == "") ? "" : "no data"
        else if (k == "ratio_ge3") met = (s / e >= 3) ? "met" : "MISSED"
        else if (k == "le_etcd") met = (s + 0 <= e + 0) ? "met" : "MISSED"
        else if (k == "lt_0.5") met = (s + 0 < 0.5) ? "met" : "MISSED"
        else if (k == "lt_5") met = (s + 0 < 5) ? "met" : "MISSED"
        else if (k == "half") met = (s / e < 0.5) ? "met" : "MISSED"
        printf "%-36s %11s %11s %8s   %-22s %s\n", l, (s == "" ? "-" : s), (e == "" ? "-" : e), ratio, g, met
    }'
}

echo
echo "sctld vs etcd $(etcd --version | sed -n 's/^etcd Version: //p'), $(nproc) cores" \
    "($(lscpu | sed -n 's/^Model name: *//p' | head -1)), disk: $fstype (one 4 KiB O_DSYNC" \
    "write: ${sync_ms:-?} ms), 16 B keys, 256 B values"
printf "%-36s %11s %11s %8s   %-22s %s\n" metric sctld etcd ratio goal ""
row "put/s, 1 conn" "${res[put1.rps.sctld]}" "${res[put1.rps.etcd]}"
row "put p50 ms, 1 conn" "${res[put1.p50.sctld]}" "${res[put1.p50.etcd]}" lt_0.5 "< 0.5 ms"
row "put p99 ms, 1 conn" "${res[put1.p99.sctld]}" "${res[put1.p99.etcd]}"
row "put/s, 64 conns" "${res[put64.rps.sctld]}" "${res[put64.rps.etcd]}" ratio_ge3 ">= 3x etcd"
row "put p50 ms, 64 conns" "${res[put64.p50.sctld]}" "${res[put64.p50.etcd]}"
row "put p99 ms, 64 conns" "${res[put64.p99.sctld]}" "${res[put64.p99.etcd]}" le_etcd "<= etcd"
row "  (server CPU us per put, 64 conns)" "${res[put64.cpu.sctld]}" "${res[put64.cpu.etcd]}"
row "linearizable get/s, 64 conns" "${res[get64.rps.sctld]}" "${res[get64.rps.etcd]}"
row "get p99 ms, 64 conns" "${res[get64.p99.sctld]}" "${res[get64.p99.etcd]}"
row "  (server CPU us per get, 64 conns)" "${res[get64.cpu.sctld]}" "${res[get64.cpu.etcd]}"
row "watch p50 ms, $watchers watchers" "${res[watch.p50.sctld]}" "${res[watch.p50.etcd]}"
row "watch p99 ms, $watchers watchers" "${res[watch.p99.sctld]}" "${res[watch.p99.etcd]}" lt_5 "< 5 ms"
row "  (p99 to read by the client)" "${res[watch.user_p99.sctld]}" "${res[watch.user_p99.etcd]}"
row "  (put ack p50 ms during watch)" "${res[watch.ack.sctld]}" "${res[watch.ack.etcd]}"
row "  (server CPU us per delivery)" "${res[watch.cpu.sctld]}" "${res[watch.cpu.etcd]}"
row "RSS MiB after $keys keys" "${res[rss.sctld]}" "${res[rss.etcd]}" half "< 0.5x etcd"
row "load put/s (100k keys, 64 conns)" "${res[load.rps.sctld]}" "${res[load.rps.etcd]}"
echo "ratio = sctld / etcd.  load average before: $load_before, after:" \
    "$(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - t_start)) s"
if [ ${#bad[@]} -gt 0 ]; then
    echo
    echo "FAILED requests or events (numbers above are not trustworthy for these):"
    printf '  %s\n' "${bad[@]}"
    exit 1
fi
