#!/usr/bin/env bash
# raft_forward.sh: throughput of writes forwarded by a follower to the leader, on a
# 3-member sctld cluster on loopback, next to the same load sent to the leader
# itself.  Each run is `kvbench load` (distinct 16 B keys, 256 B values, keep-alive
# client connections); the forwarding cost is the difference between the two.
# Prints one line per run and the median of each.  Processes are ended by PID; the
# data dirs live in a temp dir.
#
#   bench/raft_forward.sh BUILD [RUNS=3] [PUTS=5000] [CONNS="1 16"]
#   SC_BENCH_TMP=/dev/shm bench/raft_forward.sh ...   data dirs on tmpfs: fdatasync
#                                  costs nothing, so the hop is not hidden by the disk
#
# BUILD is a meson build dir with src/sctld/sctld and bench/kvbench (a release build
# for numbers worth writing down).  Election timeouts are 5x the default, so that
# a busy machine does not move the leader in the middle of a run.
set -uo pipefail
B=${1:?usage: raft_forward.sh BUILD [runs] [puts] [conns]}
RUNS=${2:-3}
PUTS=${3:-5000}
CONNS=${4:-1 16}
SCTLD=$B/src/sctld/sctld
KVB=$B/bench/kvbench
dir=$(mktemp -d "${SC_BENCH_TMP:-/tmp}/sc-forward-XXXXXX")
read -r p1 p2 p3 q1 q2 q3 < <("$KVB" port 6)
port=("" "$p1" "$p2" "$p3")
IC="c1=127.0.0.1:$q1,c2=127.0.0.1:$q2,c3=127.0.0.1:$q3"
declare -A PID
cleanup() { for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
peer=("" "$q1" "$q2" "$q3")
for n in 1 2 3; do
  "$SCTLD" --name c$n --data-dir "$dir/d$n" --listen 127.0.0.1:${port[$n]} \
    --peer-listen 127.0.0.1:${peer[$n]} --initial-cluster "$IC" --election-ticks 50 \
    >>"$dir/c$n.log" 2>&1 &
  PID[$n]=$!
done
L=""
for _ in $(seq 1 100); do
  L=$(curl -s -m 1 http://127.0.0.1:$p1/v1/cluster | jq -r '.members[] | select(.leader) | .name' 2>/dev/null)
  [ -n "$L" ] && break
  sleep 0.1
done
[ -n "$L" ] || { echo "no leader"; exit 1; }
L=${L#c}
F=$(( L % 3 + 1 ))
# every member knows the leader's client address (from its hello) before we start
until curl -sf -m 1 -X PUT -d w http://127.0.0.1:${port[$F]}/v1/kv/warm >/dev/null; do sleep 0.05; done
echo "leader c$L, follower c$F, $PUTS puts a run"
for c in $CONNS; do
  for target in leader follower; do
    n=$L; [ $target = follower ] && n=$F
    rates=()
    for r in $(seq 1 "$RUNS"); do
      # TCP connections to the leader's client port, in any state (TIME_WAIT
      # included): a follower that opens one per write leaves PUTS of them
      before=$(ss -Htan "( dport = :${port[$L]} )" | wc -l)
      out=$("$KVB" load sctld 127.0.0.1:${port[$n]} "$PUTS" "$c") || { echo "$out"; exit 1; }
      after=$(ss -Htan "( dport = :${port[$L]} )" | wc -l)
      rate=$(sed -n 's/.*puts_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
      rates+=("$rate")
      conns=""
      [ $target = follower ] && conns=" leader_conns_opened=$((after - before))"
      echo "conns=$c target=$target run=$r $out$conns"
    done
    med=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "MEDIAN conns=$c target=$target puts_per_sec=$med"
  done
done
