#!/usr/bin/env bash
# raft_vs_etcd.sh: three sctld members against three etcd members, in one run, as one
# table of ratios.
#
# Why: issue 3 sets the replicated store's goals relative to a real 3-member etcd
# cluster on the same machine and disk (>= 3x put throughput at 64 connections with a
# lower p99, >= 5x linearizable get throughput at 64 connections, failover median
# <= 250 ms with default timeouts).  Ratios taken in the same run are the only fair
# way to state them on a shared 2-core machine.
#
# How: each system runs as three members on loopback, formed with --initial-cluster
# (peer addresses), data dirs side by side under one temp dir on a real disk
# (/var/tmp; tmpfs is refused), default timeouts (sctld: 10 ms tick, 10-tick election
# timeout; etcd: 100 ms heartbeat, 1 s election timeout).  Load shape and clients are
# those of bench/kv_vs_etcd.sh: 16-byte keys, 256-byte values, each system's HTTP/JSON
# interface (sctld /v1, etcd's v3 gRPC gateway), wrk + bench/wrk_kv.lua for
# throughput and latency, build-bench/bench/kvbench for the exact 100k-key load.
#
# Where the clients go: the main rows send every connection to the current leader
# (found before each phase: sctld GET /v1/cluster, etcd POST /v3/maintenance/status),
# for both systems.  The "spread" rows run wrk with 3 threads, one per member (wrk's
# thread.addr), 21 connections each, so followers forward to the leader (sctld: an
# HTTP forward; etcd: a raft MsgProp / ReadIndex to the leader).
#
# Failover (each system, TRIALS times): wait until every member acknowledges a write,
# kill -9 the leader, then start a write through one survivor every 10 ms (one
# pre-started probe process, a thread and a new connection per write, 2 s timeout
# each, overlapping) until one is acknowledged; failover time = moment of the first
# acknowledgement - moment the killed leader was reaped.  Overlapping attempts
# are needed for etcd, whose follower forwards a proposal to the dead leader and holds
# it until its request timeout; a single retrying client would measure its own timeout.
# The killed member is restarted; the next trial waits until every member acknowledges
# a write and then SETTLE seconds more (default 3), because sctld's peer transport
# redials a peer that was down with exponential backoff up to 2 s (+-25 %), so right
# after a restart a survivor may not yet have its link to the restarted member back.
# The members log at info level, so the table also shows when the new leader was
# elected (its "became leader" log line), splitting failover into election and first
# commit.
#
# Usage: bench/raft_vs_etcd.sh       (builds build-bench: release, no sanitizers)
# Environment: SC_BENCH_BUILD=dir (default build-bench), SC_BENCH_REV=commit (build
# that commit from a clean `git archive` export in /var/tmp/sc-raftbench-src-SHA
# instead of the working tree, which others may be editing), DURATION=10 (s per wrk
# run), TRIALS=20 (failover trials per system), SETTLE=3 (s between a healthy cluster
# and the kill), KEEP=1 keeps the temp dir with every phase's log.
# Takes 8-12 minutes (most of it the 2 x 20 failover trials).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SC_BENCH_BUILD:-$root/build-bench}
duration=${DURATION:-10}
trials=${TRIALS:-20}
settle=${SETTLE:-3}
keys=100000
lua=$root/bench/wrk_kv.lua

for tool in wrk etcd curl jq meson ninja python3; do
    command -v "$tool" >/dev/null || {
        echo "raft_vs_etcd: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    }
done

src=$root
sctld_rev="$(git -C "$root" rev-parse --short HEAD)"
if [ -n "${SC_BENCH_REV:-}" ]; then
    sha=$(git -C "$root" rev-parse --verify "${SC_BENCH_REV}^{commit}")
    src=/var/tmp/sc-raftbench-src-${sha:0:12}
    build=$src/build
    if [ ! -d "$src" ]; then
        mkdir -p "$src.part"
        git -C "$root" archive "$sha" | tar -x -C "$src.part"
        mv "$src.part" "$src"
    fi
    sctld_rev="${sha:0:7}, clean export"
else
    git -C "$root" diff --quiet HEAD -- src || sctld_rev+=", working tree with uncommitted src changes"
fi
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" src/sctld/sctld bench/kvbench >/dev/null
sctld_bin=$build/src/sctld/sctld
kvbench=$build/bench/kvbench

# /var/tmp rather than /tmp: it must be a real disk, or fsync costs nothing.
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/sc-raftbench.XXXXXX")
fstype=$(df --output=fstype "$tmp" | tail -1)
if [ "$fstype" = tmpfs ]; then
    rmdir "$tmp"
    echo "raft_vs_etcd: $tmp is on tmpfs, where fsync costs nothing; set TMPDIR to a disk" >&2
    exit 1
fi

declare -A pid   # pid[SYS.N] of a running member
declare -A cport # client port of member N
declare -A pport # peer port of member N
probe_pid=""     # the failover probe, while one runs
cleanup() {
    local p
    for p in "${pid[@]}" $probe_pid; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pid[@]}" $probe_pid; do
        wait "$p" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "raft_vs_etcd: logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a ports < <("$kvbench" port 12)
i=0
for sys in sctld etcd; do
    for n in 1 2 3; do
        cport[$sys.$n]=${ports[i]}
        pport[$sys.$n]=${ports[i + 1]}
        i=$((i + 2))
    done
done
sctld_cluster="c1=127.0.0.1:${pport[sctld.1]},c2=127.0.0.1:${pport[sctld.2]},c3=127.0.0.1:${pport[sctld.3]}"
etcd_cluster="e1=http://127.0.0.1:${pport[etcd.1]},e2=http://127.0.0.1:${pport[etcd.2]}"
etcd_cluster+=",e3=http://127.0.0.1:${pport[etcd.3]}"

addr() { echo "127.0.0.1:${cport[$1.$2]}"; } # sys n -> client address

start_member() { # sys n
    local sys=$1 n=$2
    if [ "$sys" = sctld ]; then
        "$sctld_bin" --name "c$n" --data-dir "$tmp/sctld$n" --listen "$(addr sctld "$n")" \
            --peer-listen "127.0.0.1:${pport[sctld.$n]}" --initial-cluster "$sctld_cluster" \
            --log-level info >>"$tmp/sctld$n.log" 2>&1 &
    else
        etcd --name "e$n" --data-dir "$tmp/etcd$n" \
            --listen-client-urls "http://$(addr etcd "$n")" \
            --advertise-client-urls "http://$(addr etcd "$n")" \
            --listen-peer-urls "http://127.0.0.1:${pport[etcd.$n]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${pport[etcd.$n]}" \
            --initial-cluster "$etcd_cluster" --initial-cluster-state new \
            --initial-cluster-token raft-vs-etcd \
            --logger zap --log-level info >>"$tmp/etcd$n.log" 2>&1 &
    fi
    pid[$sys.$n]=$!
}

put_once() { # sys n key -> status 0 if one write was acknowledged (2xx)
    if [ "$1" = sctld ]; then
        curl -sf -o /dev/null -m "${4:-1}" -X PUT --data-binary v "http://$(addr "$1" "$2")/v1/kv/$3"
    else
        curl -sf -o /dev/null -m "${4:-1}" -X POST \
            -d "{\"key\":\"$(printf %s "$3" | base64)\",\"value\":\"dg==\"}" \
            "http://$(addr "$1" "$2")/v3/kv/put"
    fi
}

leader_of() { # sys -> member number of the leader, as the first member that answers says
    local sys=$1 n l
    for n in 1 2 3; do
        [ -n "${pid[$sys.$n]:-}" ] || continue
        if [ "$sys" = sctld ]; then
            l=$(curl -s -m 1 "http://$(addr sctld "$n")/v1/cluster" 2>/dev/null |
                jq -r '.members[] | select(.leader) | .name' 2>/dev/null || true)
            l=${l#c}
        else
            # the member whose id is the leader id it reports is the leader
            l=$(curl -s -m 1 -X POST -d '{}' "http://$(addr etcd "$n")/v3/maintenance/status" \
                2>/dev/null | jq -r 'if .leader == .header.member_id then "self" else "" end' \
                2>/dev/null || true)
            if [ "$l" != self ]; then continue; fi
            l=$n
        fi
        [ -n "$l" ] && [ "$l" != null ] && {
            echo "$l"
            return 0
        }
    done
    return 1
}

# A member that is not ready: say whether it still runs (and how it ended if not),
# show its log, and fail wait_ready.
member_died() { # sys n
    local st=running
    if ! kill -0 "${pid[$1.$2]}" 2>/dev/null; then
        wait "${pid[$1.$2]}" 2>/dev/null && st="exited 0" || st="exited with status $?"
        unset "pid[$1.$2]"
    fi
    echo "raft_vs_etcd: $1 member $2 does not acknowledge writes ($st); its log:" >&2
    tail -20 "$tmp/$1$2.log" >&2
    not_ready="$1 member $2 ($st)"
    return 1
}

# For a failover trial: the leader's member number once every running member names
# the same leader (a member's view can lag behind an election, and killing a member
# that is no longer the leader measures nothing).
leader_agreed() { # sys
    local sys=$1 n v want="" lead=""
    declare -A own
    for _ in $(seq 50); do
        want="" lead=""
        for n in 1 2 3; do
            [ -n "${pid[$sys.$n]:-}" ] || continue
            if [ "$sys" = sctld ]; then
                v=$(curl -s -m 1 "http://$(addr sctld "$n")/v1/cluster" 2>/dev/null |
                    jq -r '.members[] | select(.leader) | .name' 2>/dev/null || true)
                own[$n]=c$n
            else
                read -r v own[$n] < <(curl -s -m 1 -X POST -d '{}' \
                    "http://$(addr etcd "$n")/v3/maintenance/status" 2>/dev/null |
                    jq -r '"\(.leader) \(.header.member_id)"' 2>/dev/null || true) || true
            fi
            if [ -z "$v" ] || [ "$v" = null ] || [ "$v" = 0 ] || { [ -n "$want" ] && [ "$v" != "$want" ]; }; then
                want=""
                break
            fi
            want=$v
        done
        for n in 1 2 3; do
            [ -n "$want" ] && [ -n "${pid[$sys.$n]:-}" ] && [ "${own[$n]:-}" = "$want" ] && lead=$n
        done
        [ -n "$lead" ] && {
            echo "$lead"
            return 0
        }
        sleep 0.1
    done
    return 1
}

wait_ready() { # sys: a leader is known and every running member acknowledges a write
    local sys=$1 n i
    for i in $(seq 300); do
        leader_of "$sys" >/dev/null && break
        for n in 1 2 3; do
            [ -z "${pid[$sys.$n]:-}" ] || kill -0 "${pid[$sys.$n]}" 2>/dev/null ||
                member_died "$sys" "$n" || return 1
        done
        sleep 0.1
    done
    for n in 1 2 3; do
        [ -n "${pid[$sys.$n]:-}" ] || continue
        for i in $(seq 300); do
            put_once "$sys" "$n" warm && break
            kill -0 "${pid[$sys.$n]}" 2>/dev/null || break
            sleep 0.1
        done
        put_once "$sys" "$n" warm || member_died "$sys" "$n" || return 1
    done
}

for sys in sctld etcd; do
    for n in 1 2 3; do start_member "$sys" "$n"; done
done
for sys in sctld etcd; do wait_ready "$sys" || exit 1; done

declare -A res # res[metric.field.system] = number
bad=()         # phases with failed requests

field() { # key line -> value of key=value
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1
}

result_line() { # log file -> its RESULT line, or a failure marker
    local line
    line=$(grep '^RESULT' "$1" || true)
    [ -n "$line" ] || line="RESULT failed=1"
    echo "$line"
}

cpu_ticks() { # sys -> user+system clock ticks of all threads of the 3 members
    local n t=0
    for n in 1 2 3; do
        [ -n "${pid[$1.$n]:-}" ] || continue
        t=$((t + $(awk '{print $14 + $15}' "/proc/${pid[$1.$n]}/stat")))
    done
    echo "$t"
}

# wrk script for the spread rows: wrk_kv.lua, with wrk thread k sent to member k.
spread_lua() { # sys -> path
    local f=$tmp/spread-$1.lua
    {
        echo "dofile(\"$lua\")"
        echo "local kv_setup, addrs, k = setup, {}, 0"
        for n in 1 2 3; do
            echo "addrs[$n] = wrk.lookup(\"127.0.0.1\", \"${cport[$1.$n]}\")[1]"
        done
        echo "function setup(thread) kv_setup(thread); k = k + 1; thread.addr = addrs[(k - 1) % 3 + 1] end"
    } >"$f"
    echo "$f"
}

run_wrk() { # metric sys threads conns op tag target(leader|spread)
    local metric=$1 sys=$2 log=$tmp/$1-$2.log line cpu0 url script=$lua l
    l=$(leader_of "$sys") || {
        bad+=("$metric/$sys: no leader")
        return
    }
    url="http://$(addr "$sys" "$l")/"
    [ "$7" = spread ] && script=$(spread_lua "$sys")
    cpu0=$(cpu_ticks "$sys")
    wrk -t"$3" -c"$4" -d"${duration}s" --timeout 10s --latency -s "$script" "$url" \
        -- "$sys" "$5" "$6" >"$log" 2>&1 || true
    line=$(result_line "$log")
    # Server CPU of all 3 members per request: robust against others taking the cores.
    res[$metric.cpu.$sys]=$(awk -v t="$(($(cpu_ticks "$sys") - cpu0))" \
        -v hz="$(getconf CLK_TCK)" -v n="$(field requests "$line")" \
        'BEGIN {if (n > 0) printf "%.1f", t / hz * 1e6 / n}')
    res[$metric.rps.$sys]=$(field rps "$line")
    res[$metric.p50.$sys]=$(awk -v u="$(field p50_us "$line")" 'BEGIN{printf "%.3f", u/1000}')
    res[$metric.p99.$sys]=$(awk -v u="$(field p99_us "$line")" 'BEGIN{printf "%.3f", u/1000}')
    if [ "$(field non2xx "$line")" != 0 ] || [ "$(field sockerr "$line")" != 0 ]; then
        bad+=("$metric/$sys: $line")
    fi
    [ "$(leader_of "$sys" || true)" = "$l" ] || bad+=("$metric/$sys: the leader changed during the phase")
}

elected_at() { # sys -> epoch seconds of the newest "became leader" line of any member
    local ts
    if [ "$1" = sctld ]; then
        ts=$(sed -n 's/^ts=\([^ ]*\) .*to=StateLeader.*/\1/p' "$tmp"/sctld[123].log | sort | tail -1)
    else
        ts=$(grep -h 'became leader at term' "$tmp"/etcd[123].log | jq -r .ts | sort | tail -1)
    fi
    [ -z "$ts" ] || date -d "$ts" +%s.%N
}

# The failover probe: one process started before the kill, so that no process start
# (curl's fork+exec, hundreds of ms at load average 30) is charged to a failover.  For
# each line "go" on stdin it starts a write through the given member every 10 ms, each
# on a new connection in its own thread with a 2 s timeout, and prints the wall-clock
# time of the first 2xx answer (or "none" after 30 s).  It says "ready" once started.  Python because meson, which
# every build here needs, brings python3; http.client is in its standard library.
probe_py() {
    cat <<'PY'
import base64, http.client, sys, threading, time
sys_, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def attempt(key, acks, done):
    try:
        c = http.client.HTTPConnection(host, port, timeout=2)
        if sys_ == "sctld":
            c.request("PUT", "/v1/kv/" + key, body=b"v",
                      headers={"Content-Type": "application/octet-stream"})
        else:
            k = base64.b64encode(key.encode()).decode()
            c.request("POST", "/v3/kv/put", body='{"key":"%s","value":"dg=="}' % k,
                      headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if 200 <= r.status < 300:
            acks.append(time.time())
            done.set()
    except Exception:
        pass
campaign = 0
print("ready", flush=True)
for line in sys.stdin:
    campaign += 1
    acks, done = [], threading.Event()
    end = time.time() + 30
    i = 0
    while not done.is_set() and time.time() < end:
        i += 1
        threading.Thread(target=attempt, daemon=True,
                         args=("p%d.%d.%d" % (id(acks) % 1000, campaign, i), acks, done)).start()
        done.wait(0.01)
    time.sleep(0.02)  # an attempt started earlier may finish just after the first
    print("%.6f" % min(acks) if acks else "none", flush=True)
PY
}

# One failover trial: sets fo_ms to the milliseconds from the leader's death to the
# first acknowledged write through a survivor, or to "fail".  Runs in this shell (not
# in $(...)), so that the restarted member stays our child with its pid recorded.
failover_trial() { # sys trial
    local sys=$1 t=$2 l s t0 first el probe_in probe_out
    fo_ms=fail
    el_ms=""
    wait_ready "$sys" || {
        fo_ms=stop
        return 0
    }
    sleep "$settle"
    l=$(leader_agreed "$sys") || return 0
    s=$((l % 3 + 1))
    coproc PROBE { exec python3 "$tmp/probe.py" "$sys" 127.0.0.1 "${cport[$sys.$s]}"; }
    # shellcheck disable=SC2153 # set by coproc
    probe_pid=$PROBE_PID
    probe_in=${PROBE[1]} probe_out=${PROBE[0]}
    read -r first <&"$probe_out" || true # "ready": started and imported
    # Baseline: the same probe through the same survivor while all is well, so the
    # table can say how much of a failover is one write's path through a busy machine.
    t0=$EPOCHREALTIME
    echo go >&"$probe_in"
    read -r first <&"$probe_out" || first=none
    [ "$first" = none ] || awk -v a="$first" -v b="$t0" \
        'BEGIN {printf "%d\n", (a - b) * 1000 + 0.5}' >>"$tmp/baseline-$sys.ms"
    kill -9 "${pid[$sys.$l]}"
    wait "${pid[$sys.$l]}" 2>/dev/null || true
    unset "pid[$sys.$l]"
    t0=$EPOCHREALTIME
    echo go >&"$probe_in"
    read -r first <&"$probe_out" || first=none
    kill "$probe_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
    probe_pid=""
    start_member "$sys" "$l"
    [ "$first" = none ] || fo_ms=$(awk -v a="$first" -v b="$t0" 'BEGIN {printf "%d", (a - b) * 1000 + 0.5}')
    el=$(elected_at "$sys")
    [ -z "$el" ] || el_ms=$(awk -v a="$el" -v b="$t0" 'BEGIN {if (a > b) printf "%d", (a - b) * 1000 + 0.5}')
    # No write can commit between the leader's death and the next election: an ack
    # before any new leader was elected means the killed member had lost leadership
    # already (an election between the check and the kill), so this is no failover.
    if [ "$fo_ms" != fail ] && { [ -z "$el_ms" ] || [ "$el_ms" -gt "$fo_ms" ]; }; then
        fo_ms=invalid
    fi
    echo "trial $t: $sys leader member $l killed, first ack through member $s: $first - $t0" \
        >>"$tmp/failover-$sys.log"
}

median_of() { # numbers on stdin -> "median min max n"
    sort -n | awk '{a[NR] = $1} END {if (NR == 0) exit;
        printf "%d %d %d %d\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2),
        a[1], a[NR], NR}'
}

echo "raft_vs_etcd: sctld $(addr sctld 1),$(addr sctld 2),$(addr sctld 3);" \
    "etcd $(addr etcd 1),$(addr etcd 2),$(addr etcd 3); data in $tmp ($fstype)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sync_ms=$(dd if=/dev/zero of="$tmp/sync.probe" bs=4096 count=200 oflag=dsync 2>&1 |
    awk '/copied/ {for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) printf "%.3f", $(i - 1) * 1000 / 200}')
rm -f "$tmp/sync.probe"
t_start=$(date +%s)

echo "raft_vs_etcd: loading $keys keys into each (64 connections to the leader)" >&2
for sys in sctld etcd; do
    l=$(leader_of "$sys")
    "$kvbench" load "$sys" "$(addr "$sys" "$l")" "$keys" 64 >"$tmp/load-$sys.log" 2>&1 || true
    line=$(result_line "$tmp/load-$sys.log")
    res[load.rps.$sys]=$(field puts_per_sec "$line")
    [ "$(field keys "$line")" = "$keys" ] && [ "$(field failures "$line")" = 0 ] ||
        bad+=("load/$sys: $line")
    res[rss.$sys]=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/${pid[$sys.$l]}/status")
done

echo "raft_vs_etcd: put at 1, 64, 256 connections to the leader, then 63 spread; ${duration}s each" >&2
for sys in sctld etcd; do run_wrk put1 "$sys" 1 1 put a leader; done
for sys in sctld etcd; do run_wrk put64 "$sys" 2 64 put b leader; done
for sys in sctld etcd; do run_wrk put256 "$sys" 2 256 put c leader; done
for sys in sctld etcd; do run_wrk put63s "$sys" 3 63 put d spread; done
echo "raft_vs_etcd: linearizable get at 64 connections to the leader, then 63 spread" >&2
for sys in sctld etcd; do run_wrk get64 "$sys" 2 64 get g leader; done
for sys in sctld etcd; do run_wrk get63s "$sys" 3 63 get h spread; done

probe_py >"$tmp/probe.py"
for sys in sctld etcd; do
    echo "raft_vs_etcd: failover, $sys, $trials trials" >&2
    : >"$tmp/failover-$sys.ms"
    : >"$tmp/elected-$sys.ms"
    : >"$tmp/baseline-$sys.ms"
    res[fo.excluded.$sys]=0
    for t in $(seq "$trials"); do
        failover_trial "$sys" "$t"
        echo "  trial $t: $fo_ms ms (leader elected after ${el_ms:-?} ms)" >&2
        if [ "$fo_ms" = stop ]; then
            bad+=("failover/$sys: stopped before trial $t: $not_ready")
            break
        elif [ "$fo_ms" = invalid ]; then
            res[fo.excluded.$sys]=$((${res[fo.excluded.$sys]:-0} + 1))
        elif [ "$fo_ms" = fail ]; then
            bad+=("failover/$sys trial $t: no leader, or no write acknowledged within 30 s")
        else
            echo "$fo_ms" >>"$tmp/failover-$sys.ms"
            echo "$el_ms" >>"$tmp/elected-$sys.ms"
        fi
    done
    read -r "res[fo.med.$sys]" "res[fo.min.$sys]" "res[fo.max.$sys]" "res[fo.n.$sys]" \
        < <(median_of <"$tmp/failover-$sys.ms") || true
    read -r "res[el.med.$sys]" _ < <(median_of <"$tmp/elected-$sys.ms") || true
    read -r "res[base.med.$sys]" _ < <(median_of <"$tmp/baseline-$sys.ms") || true
done

for sys in sctld etcd; do
    for n in 1 2 3; do
        [ -n "${pid[$sys.$n]:-}" ] && kill -0 "${pid[$sys.$n]}" 2>/dev/null ||
            bad+=("$sys member $n exited during the run")
    done
done
# What the disk gave sctld's log: its WAL write+fdatasync histogram (power-of-two
# microsecond buckets, counted since each member's last start).
fsync_note=$(for n in 1 2 3; do
    curl -s -m 2 "http://$(addr sctld "$n")/metrics" | tee "$tmp/metrics-sctld$n.txt"
done | awk -F'[ "]' '
    /^sc_wal_fsync_duration_seconds_sum/ {sum += $2}
    /^sc_wal_fsync_duration_seconds_count/ {cnt += $2}
    /^sc_wal_fsync_duration_seconds_bucket\{le="0.065536"\}/ {le64 += $4}
    /^sc_wal_fsync_duration_seconds_bucket\{le="0.131072"\}/ {le131 += $4}
    END {if (cnt > 0) printf "sctld WAL syncs (3 members, since their last start): %d, mean %.2f ms, " \
        "%.2f%% over 65 ms, %.2f%% over 131 ms", cnt, sum / cnt * 1000,
        (cnt - le64) * 100 / cnt, (cnt - le131) * 100 / cnt}')

# ---- the table --------------------------------------------------------------------
row() { # label sctld etcd goal-kind goal-text
    awk -v l="$1" -v s="${2:-}" -v e="${3:-}" -v k="${4:-}" -v g="${5:-}" 'BEGIN {
        ratio = (s != "" && e != "" && e + 0 > 0) ? sprintf("%.2fx", s / e) : "-"
        met = ""
        if (s == "" || e == "") met = (k == "") ? "" : "no data"
        else if (k == "ratio_ge3") met = (s / e >= 3) ? "met" : "MISSED"
        else if (k == "ratio_ge5") met = (s / e >= 5) ? "met" : "MISSED"
        else if (k == "lt_etcd") met = (s + 0 < e + 0) ? "met" : "MISSED"
        else if (k == "le_250") met = (s + 0 <= 250) ? "met" : "MISSED"
        printf "%-38s %10s %10s %8s   %-16s %s\n", l, (s == "" ? "-" : s), (e == "" ? "-" : e), ratio, g, met
    }'
}
r() { row "$1" "${res[$2.sctld]:-}" "${res[$2.etcd]:-}" "${3:-}" "${4:-}"; }

echo
echo "3 sctld vs 3 etcd $(etcd --version | sed -n 's/^etcd Version: //p') on loopback," \
    "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), disk: $fstype" \
    "(one 4 KiB O_DSYNC write: ${sync_ms:-?} ms), 16 B keys, 256 B values"
echo "sctld: $sctld_bin ($sctld_rev); clients to the leader unless 'spread'"
printf "%-38s %10s %10s %8s   %-16s %s\n" metric sctld etcd ratio goal ""
r "put/s, 1 conn" put1.rps
r "put p50 ms, 1 conn" put1.p50
r "put p99 ms, 1 conn" put1.p99
r "put/s, 64 conns" put64.rps ratio_ge3 ">= 3x etcd"
r "put p50 ms, 64 conns" put64.p50
r "put p99 ms, 64 conns" put64.p99 lt_etcd "< etcd"
r "  (CPU us per put, 3 members, 64)" put64.cpu
r "put/s, 256 conns" put256.rps
r "put p50 ms, 256 conns" put256.p50
r "put p99 ms, 256 conns" put256.p99
r "put/s, 63 conns spread over 3" put63s.rps
r "put p99 ms, 63 conns spread" put63s.p99
r "linearizable get/s, 64 conns" get64.rps ratio_ge5 ">= 5x etcd"
r "get p99 ms, 64 conns" get64.p99
r "  (CPU us per get, 3 members, 64)" get64.cpu
r "linearizable get/s, 63 spread over 3" get63s.rps
r "get p99 ms, 63 conns spread" get63s.p99
r "failover median ms ($trials trials)" fo.med le_250 "<= 250 ms"
r "  (kill -> leader elected, median ms)" el.med
r "  (one probe write, no failure, median)" base.med
r "  (trials excluded: no longer leader)" fo.excluded
r "failover min ms" fo.min
r "failover max ms" fo.max
r "RSS MiB of the leader after 100k keys" rss
r "load put/s (100k keys, 64 conns)" load.rps
[ -z "$fsync_note" ] || echo "$fsync_note"
echo "ratio = sctld / etcd.  load average before: $load_before, after:" \
    "$(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - t_start)) s"
if [ ${#bad[@]} -gt 0 ]; then
    echo
    echo "FAILED requests or phases (numbers above are not trustworthy for these):"
    printf '  %s\n' "${bad[@]}"
    exit 1
fi
