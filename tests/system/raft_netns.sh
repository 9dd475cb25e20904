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
#      revisions grow with the client's sequence numbers);
#   7. meanwhile, from step 3 to the heal, three concurrent clients put and
#      read (linearizable gets) three keys through all members; their history,
#      across the kill -9, the restart and the cut, is checked by `lincheck`
#      (the simulator's linearizability checker, docs/sim.md).
#
# Skips (exit 77) when not root or when network namespaces are unavailable.
# Everything it creates (namespaces, links, processes by PID, temp dir) is
# removed on exit (SC_KEEP=1 keeps the temp dir with logs and the history).
# Run: tests/system/raft_netns.sh BUILD/src/sctld/sctld [BUILD/tests/sim/lincheck]
set -uo pipefail
SCTLD=${1:?usage: raft_netns.sh PATH/TO/sctld [PATH/TO/lincheck]}
LINCHECK=${2:-$(dirname "$SCTLD")/../../tests/sim/lincheck}
[ -x "$LINCHECK" ] || { echo "FAIL: no lincheck at $LINCHECK"; exit 1; }
NET=10.77.0 NMEMBERS=3 TAG=scr
source "$(dirname "$0")/netns_lib.sh"
IC="c1=10.77.0.1:7410,c2=10.77.0.2:7410,c3=10.77.0.3:7410"
status() { $B curl -s -m 4 -o /dev/null -w '%{http_code}' "$@"; }
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
for n in 1 2 3; do start $n "$IC"; done
L=$(wait_leader 1 2 3) || fail "no leader elected"
echo "ok 1 leader is c$L"
for n in 1 2 3; do
  [ "$(api http://10.77.0.$n:7400/v1/cluster | jq '.members | length')" = 3 ] || fail "c$n does not list 3 members"
done
for i in $(seq 1 30); do write $(( i % 3 + 1 )) || fail "write $i through c$(( i % 3 + 1 ))"; done
echo "ok 2 30 writes through every member"
lin_note "start: leader c$L"
lin_start 3 1 2 3

lin_note "kill -9 leader c$L"
kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
S=$(( L % 3 + 1 ))
t0=$(date +%s%N)
until write $S; do sleep 0.01; [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 10000 ] || fail "no write after leader kill"; done
echo "ok 3 first acknowledged write $(( ($(date +%s%N) - t0) / 1000000 )) ms after kill -9 of the leader"
for i in $(seq 1 150); do write $S || write $(( S % 3 + 1 )) || true; done

lin_note "restart c$L"
start $L "$IC"
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
lin_note "cut c$F off (leader c$L)"
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
lin_note "heal c$F"
ip -n ${tag}$F link set eth0 up
want=$(api "http://10.77.0.$M:7400/v1/kv?prefix=h/&count_only=1" | jq .count)
for _ in $(seq 1 100); do
  got=$(api "http://10.77.0.$F:7400/v1/kv?prefix=h/&count_only=1&serializable=1" | jq .count 2>/dev/null)
  [ "$got" = "$want" ] && break; sleep 0.1
done
[ "$got" = "$want" ] || fail "healed c$F has $got keys, want $want"
echo "ok 6 healed c$F converged"
sleep 1 # the clients also talk to the healed member for a moment
lin_stop 30
echo "ok 7 client history across kill -9, restart, cut and heal is linearizable: $LIN_SUMMARY"

for s in "${ACKED[@]}"; do printf 'h/%06d v%s\n' "$s" "$s"; done | sort >"$dir/want"
for n in 1 2 3; do
  api "http://10.77.0.$n:7400/v1/kv?prefix=h/&serializable=1" >"$dir/kv$n.json"
  # one jq per member, not per write (a loaded CI machine forks slowly)
  jq -r '.kvs[] | "\(.key) \(.value)"' "$dir/kv$n.json" | sort >"$dir/have$n"
  missing=$(comm -23 "$dir/want" "$dir/have$n" | head -3)
  [ -z "$missing" ] || fail "c$n lacks acknowledged writes: $missing"
  jq -e '[.kvs[].mod_revision] as $r | $r == ($r | sort)' "$dir/kv$n.json" >/dev/null \
    || fail "c$n: mod revisions do not follow the write order"
done
echo "ok 8 all ${#ACKED[@]} acknowledged writes present on every member, in order"
