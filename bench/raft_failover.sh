#!/usr/bin/env bash
# raft_failover.sh: failover time of a 3-member sctld cluster on loopback: kill -9
# the leader, time until the first write acknowledged through a survivor; the
# killed member is restarted before the next trial.  Prints every trial and the
# median.  Processes are ended by PID; the data dirs live in a temp dir.
#
#   bench/raft_failover.sh BUILD/src/sctld/sctld [TRIALS=20] [extra sctld flags...]
set -uo pipefail
SCTLD=${1:?usage: raft_failover.sh PATH/TO/sctld [trials] [flags...]}
TRIALS=${2:-20}
shift $(( $# >= 2 ? 2 : 1 ))
EXTRA=("$@")
dir=$(mktemp -d /tmp/sc-failover-XXXXXX)
base=$(( 20000 + RANDOM % 20000 ))
IC="c1=127.0.0.1:$((base+11)),c2=127.0.0.1:$((base+12)),c3=127.0.0.1:$((base+13))"
declare -A PID
cleanup() { for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
start() {
  "$SCTLD" --name c$1 --data-dir "$dir/d$1" --listen 127.0.0.1:$((base+$1)) \
    --peer-listen 127.0.0.1:$((base+10+$1)) --initial-cluster $IC "${EXTRA[@]}" >>"$dir/c$1.log" 2>&1 &
  PID[$1]=$!
}
leader() {
  for n in 1 2 3; do
    [ -n "${PID[$n]:-}" ] || continue
    l=$(curl -s -m 1 http://127.0.0.1:$((base+n))/v1/cluster | jq -r '.members[] | select(.leader) | .name' 2>/dev/null)
    [ -n "$l" ] && { echo "${l#c}"; return; }
  done
}
for n in 1 2 3; do start $n; done
times=()
for t in $(seq 1 "$TRIALS"); do
  L=""; for _ in $(seq 1 100); do L=$(leader); [ -n "$L" ] && break; sleep 0.1; done
  [ -n "$L" ] || { echo "no leader"; exit 1; }
  # the cluster is healthy: every member acknowledges a write
  for n in 1 2 3; do until curl -sf -m 1 -X PUT -d w http://127.0.0.1:$((base+n))/v1/kv/warm >/dev/null; do sleep 0.05; done; done
  S=$(( L % 3 + 1 ))
  kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
  t0=$(date +%s%N)
  until curl -sf -m 1 -X PUT -d x http://127.0.0.1:$((base+S))/v1/kv/t$t >/dev/null; do sleep 0.002; done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  times+=("$ms"); echo "trial $t: leader c$L killed, first ack through c$S after $ms ms"
  start "$L"
  sleep 1
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "failover median %d ms (min %d, max %d, n=%d)\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR], NR}'
