#!/usr/bin/env bash
# tls_put.sh: put throughput of sctld over http:// and over https:// with
# client certificates (sctld --tls-dir), through the shared API client
# (bench/tls_put.c), alternating the two modes ROUNDS times on fresh data dirs.
# MEMBERS=1 (default): one sctld.  MEMBERS=3: a three-member cluster on
# 127.0.0.1 (--peer-listen; with https every member has --tls-dir, the CA copied
# from the first before the others start, so the Raft peers and forwarded writes
# are mutual TLS too), the puts sent to the leader (TARGET=leader, default) or to
# a follower that forwards them (TARGET=follower).
#
# Why: issue 7 asks that mutual TLS cost at most 15 % of put throughput.
#
# Usage: bench/tls_put.sh   (builds build-tls-rel, optimised, no sanitizers)
# Environment: SC_BENCH_BUILD=dir (default build-tls-rel), THREADS=16, DURATION=10,
# ROUNDS=2, MEMBERS=1|3, TARGET=leader|follower, PORT_BASE (MEMBERS=3: peer ports
# PORT_BASE+1..3, default random in 20000-39999), TMPDIR (a real disk: fsync must
# cost what it costs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SC_BENCH_BUILD:-$root/build-tls-rel}
threads=${THREADS:-16}
duration=${DURATION:-10}
rounds=${ROUNDS:-2}
members=${MEMBERS:-1}
target=${TARGET:-leader}
port_base=${PORT_BASE:-$((20000 + RANDOM % 20000))}
case "$members/$target" in
1/leader | 3/leader | 3/follower) ;;
*) echo "tls_put.sh: MEMBERS must be 1 or 3, TARGET leader or follower (3 members)" >&2; exit 2 ;;
esac

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" src/sctld/sctld bench/tls_put >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/sc-tlsput.XXXXXX")
pid=
pids=()
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# put_row MODE URL PKI: one tls_put row against URL
put_row() {
    if [ "$1" = https ]; then
        "$build/bench/tls_put" "$2" "$threads" "$duration" "$3/ca.crt" "$3/admin.crt" \
            "$3/admin.key" | tail -1
    else
        "$build/bench/tls_put" "$2" "$threads" "$duration" | tail -1
    fi
}

# wait_listening FILE: the client port sctld printed to FILE
wait_listening() {
    for _ in $(seq 1 300); do
        grep -q 'listening on' "$1" && break
        sleep 0.1
    done
    sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$1"
}

# run3 MODE ROUND: three members, one tls_put row against the leader or a follower
run3() {
    local mode=$1 d=$tmp/$1-$2 n ic="" scheme=http curl_tls=()
    declare -A port
    for n in 1 2 3; do ic+="${ic:+,}c$n=127.0.0.1:$((port_base + n))"; done
    [ "$mode" = https ] && scheme=https &&
        curl_tls=(--cacert "$d/c1/pki/ca.crt" --cert "$d/c1/pki/admin.crt" --key "$d/c1/pki/admin.key")
    for n in 1 2 3; do
        mkdir -p "$d/c$n"
        local extra=()
        if [ "$mode" = https ]; then
            extra=(--tls-dir "$d/c$n/pki")
            if [ "$n" != 1 ]; then # the operator step: the cluster CA before the first start
                mkdir -p "$d/c$n/pki"
                cp "$d/c1/pki/ca.crt" "$d/c1/pki/ca.key" "$d/c$n/pki/"
            fi
        fi
        "$build/src/sctld/sctld" --name "c$n" --data-dir "$d/c$n/data" --listen 127.0.0.1:0 \
            --peer-listen "127.0.0.1:$((port_base + n))" --initial-cluster "$ic" "${extra[@]}" \
            >"$d/c$n/out" 2>"$d/c$n/log" &
        pids+=($!)
        port[$n]=$(wait_listening "$d/c$n/out")
    done
    local leader="" want
    for _ in $(seq 1 100); do
        leader=$(curl -s -m 1 "${curl_tls[@]}" "$scheme://127.0.0.1:${port[1]}/v1/cluster" |
            jq -r '.members[] | select(.leader) | .name' 2>/dev/null | sed 's/^c//') || true
        [ -n "$leader" ] && break
        sleep 0.1
    done
    [ -n "$leader" ] || { echo "no leader elected" >&2; exit 1; }
    want=$leader
    [ "$target" = follower ] && want=$((leader % 3 + 1))
    put_row "$mode" "$scheme://127.0.0.1:${port[$want]}" "$d/c1/pki"
    for p in "${pids[@]}"; do kill "$p"; wait "$p" || true; done
    pids=()
}

# run MODE ROUND: one sctld, one tls_put row
run() {
    local mode=$1 d=$tmp/$1-$2 port
    mkdir -p "$d"
    local extra=()
    [ "$mode" = https ] && extra=(--tls-dir "$d/pki")
    "$build/src/sctld/sctld" --data-dir "$d/data" --listen 127.0.0.1:0 "${extra[@]}" \
        >"$d/out" 2>"$d/log" &
    pid=$!
    port=$(wait_listening "$d/out")
    put_row "$mode" "$mode://127.0.0.1:$port" "$d/pki"
    kill "$pid"
    wait "$pid" || true
    pid=
}

[ "$members" = 3 ] && echo "three members, puts to the $target"
echo "| url | threads | s | puts | errors | puts/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
    if [ "$members" = 3 ]; then
        run3 http "$r"
        run3 https "$r"
    else
        run http "$r"
        run https "$r"
    fi
done
