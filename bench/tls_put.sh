#!/usr/bin/env bash
# tls_put.sh: put throughput of one sctld over http:// and over https:// with
# client certificates (sctld --tls-dir), through the shared API client
# (bench/tls_put.c), alternating the two modes ROUNDS times on fresh data dirs.
#
# Why: issue 7 asks that mutual TLS cost at most 15 % of put throughput; this is
# the measurement of the first wiring step (the API listener only, one member).
#
# Usage: bench/tls_put.sh   (builds build-tls-rel, optimised, no sanitizers)
# Environment: SC_BENCH_BUILD=dir (default build-tls-rel), THREADS=16, DURATION=10,
# ROUNDS=2, TMPDIR (a real disk: fsync must cost what it costs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SC_BENCH_BUILD:-$root/build-tls-rel}
threads=${THREADS:-16}
duration=${DURATION:-10}
rounds=${ROUNDS:-2}

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" src/sctld/sctld bench/tls_put >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/sc-tlsput.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# run MODE ROUND: one sctld, one tls_put row
run() {
    local mode=$1 d=$tmp/$1-$2 port
    mkdir -p "$d"
    local extra=()
    [ "$mode" = https ] && extra=(--tls-dir "$d/pki")
    "$build/src/sctld/sctld" --data-dir "$d/data" --listen 127.0.0.1:0 "${extra[@]}" \
        >"$d/out" 2>"$d/log" &
    pid=$!
    for _ in $(seq 1 300); do
        grep -q 'listening on' "$d/out" && break
        sleep 0.1
    done
    port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$d/out")
    if [ "$mode" = https ]; then
        "$build/bench/tls_put" "https://127.0.0.1:$port" "$threads" "$duration" \
            "$d/pki/ca.crt" "$d/pki/admin.crt" "$d/pki/admin.key" | tail -1
    else
        "$build/bench/tls_put" "http://127.0.0.1:$port" "$threads" "$duration" | tail -1
    fi
    kill "$pid"
    wait "$pid" || true
    pid=
}

echo "| url | threads | s | puts | errors | puts/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
    run http "$r"
    run https "$r"
done
