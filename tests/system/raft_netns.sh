#!/usr/bin/env bash
# raft_netns.sh: three sctld processes, each in its own network namespace on a
# bridge with no uplink (10.77.0.0/24, used only inside the namespaces this test
# creates), proving the Raft integration end to end:
#
#   1. the cluster elects one leader and every member lists the same members;
#   2. writes through any member (followers forward) are acknowledged;
#   3. kill -9 of the leader: writes continue through the survivors (time to the
#      first acknowledged write is printed);
#   4. the killed member restarts, far behind (small --snapshot-every), and
#      catches up by snapshot;
#   5. a minority cut off (its veth down) refuses writes with 503 within 3 s
#      while the majority keeps writing; after healing it converges;
#   6. every acknowledged write is present on every member, in order (mod
#      revisions grow with the client's sequence numbers).
#
# Skips (exit 77) when not root or when network namespaces are unavailable.
# Everything it creates (namespaces, links, processes by PID, temp dir) is
# removed on exit.  Run: tests/system/raft_netns.sh BUILD/src/sctld/sctld
set -uo pipefail
SCTLD=${1:?usage: raft_netns.sh PATH/TO/sctld}
[ "$(id -u)" = 0 ] || { echo "skip: not root"; exit 77; }
command -v ip >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null || {
  echo "skip: needs ip, curl and jq"; exit 77; }
tag=scr$$
ip netns add ${tag}b 2>/dev/null || { echo "skip: cannot create network namespaces"; exit 77; }
dir=$(mktemp -d /tmp/sc-raftns-XXXXXX)
declare -A PID
fail() { echo "FAIL: $*"; for n in 1 2 3; do echo "--- c$n log"; tail -15 "$dir/c$n.log"; done; exit 1; }
cleanup() {
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done
  for n in 1 2 3; do ip netns del ${tag}$n 2>/dev/null; done
  ip netns del ${tag}b 2>/dev/null
  [ "${SC_KEEP:-}" = 1 ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

# The bridge lives in its own namespace, with the client address 10.77.0.100.
B="ip netns exec ${tag}b"
$B ip link add br0 type bridge && $B ip link set br0 up && $B ip addr add 10.77.0.100/24 dev br0 \
  && $B ip link set lo up || fail "bridge"
for n in 1 2 3; do
  ip netns add ${tag}$n || fail "netns"
  ip link add v$tag$n netns ${tag}b type veth peer name eth0 netns ${tag}$n || fail "veth"
  $B ip link set v$tag$n master br0 up
  ip -n ${tag}$n addr add 10.77.0.$n/24 dev eth0
  ip -n ${tag}$n link set eth0 up
  ip -n ${tag}$n link set lo up
done
IC="c1=10.77.0.1:7410,c2=10.77.0.2:7410,c3=10.77.0.3:7410"
start() {
  local n=$1; shift
  ip netns exec ${tag}$n "$SCTLD" --name c$n --data-dir "$dir/d$n" --listen 10.77.0.$n:7400 \
    --peer-listen 10.77.0.$n:7410 --initial-cluster $IC --snapshot-every 50 "$@" \
    >>"$dir/c$n.log" 2>&1 &
  PID[$n]=$!
}
api() { $B curl -s -m 4 "$@"; }
status() { $B curl -s -m 4 -o /dev/null -w '%{http_code}' "$@"; }
leader_name() {
  local n=$1
  api "http://10.77.0.$n:7400/v1/cluster" | jq -r '.members[] | select(.leader) | .name' 2>/dev/null
}
wait_leader() { # among the given members; prints the leader's number
  for _ in $(seq 1 100); do
    for n in "$@"; do
      l=$(leader_name "$n"); [ -n "$l" ] && { echo "${l#c}"; return 0; }
    done
    sleep 0.1
  done
  return 1
}
seq_no=0
ACKED=()
write() { # write one key through member $1; records it if acknowledged
  local n=$1 k
  k=$(printf 'h/%06d' $seq_no)
  if [ "$(status -X PUT --data-binary "v$seq_no" "http://10.77.0.$n:7400/v1/kv/$k")" = 200 ]; then
    ACKED+=("$seq_no"); seq_no=$((seq_no + 1)); return 0
  fi
  seq_no=$((seq_no + 1)); return 1
}
for n in 1 2 3; do start $n; done
L=$(wait_leader 1 2 3) || fail "no leader elected"
echo "ok 1 leader is c$L"
for n in 1 2 3; do
  [ "$(api http://10.77.0.$n:7400/v1/cluster | jq '.members | length')" = 3 ] || fail "c$n does not list 3 members"
done
for i in $(seq 1 30); do write $(( i % 3 + 1 )) || fail "write $i through c$(( i % 3 + 1 ))"; done
echo "ok 2 30 writes through every member"

kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
S=$(( L % 3 + 1 ))
t0=$(date +%s%N)
until write $S; do sleep 0.01; [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 10000 ] || fail "no write after leader kill"; done
echo "ok 3 first acknowledged write $(( ($(date +%s%N) - t0) / 1000000 )) ms after kill -9 of the leader"
for i in $(seq 1 150); do write $S || write $(( S % 3 + 1 )) || true; done

start $L
want=$(api "http://10.77.0.$S:7400/v1/kv?prefix=h/&count_only=1" | jq .count)
for _ in $(seq 1 100); do
  got=$(api "http://10.77.0.$L:7400/v1/kv?prefix=h/&count_only=1&serializable=1" | jq .count 2>/dev/null)
  [ "$got" = "$want" ] && break; sleep 0.1
done
[ "$got" = "$want" ] || fail "restarted c$L has $got keys, want $want"
grep -q "installed snapshot" "$dir/c$L.log" || fail "c$L caught up without a snapshot"
echo "ok 4 restarted c$L caught up by snapshot ($want keys)"

L=$(wait_leader 1 2 3) || fail "no leader"
F=$(( L % 3 + 1 ))   # a follower to cut off
M=$(( F % 3 + 1 ))   # majority side
[ "$M" = "$F" ] && M=$(( M % 3 + 1 ))
ip -n ${tag}$F link set eth0 down
sleep 0.5
# the bridge no longer reaches it: the client asks from inside its namespace
t0=$(date +%s%N)
code=$(ip netns exec ${tag}$F curl -s -m 4 -o /dev/null -w '%{http_code}' -X PUT --data-binary x \
  "http://10.77.0.$F:7400/v1/kv/minority")
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 503 ] || fail "the cut-off member answered $code, want 503"
for i in $(seq 1 20); do write $M || write $L || fail "majority write $i"; done
echo "ok 5 cut-off c$F refused a write with 503 (${dt} ms), the majority kept writing"
ip -n ${tag}$F link set eth0 up
want=$(api "http://10.77.0.$M:7400/v1/kv?prefix=h/&count_only=1" | jq .count)
for _ in $(seq 1 100); do
  got=$(api "http://10.77.0.$F:7400/v1/kv?prefix=h/&count_only=1&serializable=1" | jq .count 2>/dev/null)
  [ "$got" = "$want" ] && break; sleep 0.1
done
[ "$got" = "$want" ] || fail "healed c$F has $got keys, want $want"
echo "ok 6 healed c$F converged"

for n in 1 2 3; do
  api "http://10.77.0.$n:7400/v1/kv?prefix=h/&serializable=1" >"$dir/kv$n.json"
  for s in "${ACKED[@]}"; do
    k=$(printf 'h/%06d' "$s")
    jq -e --arg k "$k" --arg v "v$s" '.kvs[] | select(.key==$k and .value==$v)' "$dir/kv$n.json" >/dev/null \
      || fail "c$n lacks acknowledged write $k"
  done
  jq -e '[.kvs[].mod_revision] as $r | $r == ($r | sort)' "$dir/kv$n.json" >/dev/null \
    || fail "c$n: mod revisions do not follow the write order"
done
echo "ok 7 all ${#ACKED[@]} acknowledged writes present on every member, in order"
