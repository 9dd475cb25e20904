#!/usr/bin/env bash
# forward_pool.sh: writes forwarded by a follower travel over pooled keep-alive
# connections to the leader (src/sctld/forward.c), with three real sctld on
# loopback ports picked by freeport:
#
#   1. 100 writes through a follower, one at a time: all acknowledged, and the
#      follower's /metrics says 100 forwarded over at most 2 connections opened
#      (before the pool: one per write);
#   2. 64 writes through the follower from 8 clients at once: all acknowledged,
#      at most 8 more connections (one per concurrent request, reused);
#   3. the leader is killed (kill -9, by PID): the survivors elect a leader, the
#      pool to the dead leader is dropped, and 20 writes through a follower go to
#      the new leader over the one connection the first of them opened;
#   4. every acknowledged write is on the new leader.
#
# Election timeouts are 3x the default (300-600 ms), so that a loaded CI machine
# does not depose a healthy leader mid-test.  Every process is ended by PID; the
# data dirs live in a temp dir.
# Run: tests/system/forward_pool.sh BUILD/src/sctld/sctld BUILD/tests/system/freeport
set -uo pipefail
SCTLD=${1:?usage: forward_pool.sh PATH/TO/sctld PATH/TO/freeport}
FREEPORT=${2:?usage: forward_pool.sh PATH/TO/sctld PATH/TO/freeport}
dir=$(mktemp -d /tmp/sc-fwdpool-XXXXXX)
declare -A PID PORT PPORT
cleanup() {
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for n in 1 2 3; do echo "--- c$n log"; tail -20 "$dir/c$n.log"; done
  exit 1
}
for n in 1 2 3; do PORT[$n]=$("$FREEPORT"); PPORT[$n]=$("$FREEPORT"); done
IC="c1=127.0.0.1:${PPORT[1]},c2=127.0.0.1:${PPORT[2]},c3=127.0.0.1:${PPORT[3]}"
for n in 1 2 3; do
  "$SCTLD" --name c$n --data-dir "$dir/d$n" --listen 127.0.0.1:${PORT[$n]} \
    --peer-listen 127.0.0.1:${PPORT[$n]} --initial-cluster "$IC" --election-ticks 30 \
    >"$dir/c$n.log" 2>&1 &
  PID[$n]=$!
done
url() { echo "http://127.0.0.1:${PORT[$1]}$2"; }
leader_of() { # the leader's number as member $1 sees it, or nothing
  curl -s -m 1 "$(url "$1" /v1/cluster)" | jq -r '.members[] | select(.leader) | .name' 2>/dev/null |
    sed 's/^c//'
}
wait_leader() { # among the members given
  for _ in $(seq 1 100); do
    for n in "$@"; do
      l=$(leader_of "$n")
      [ -n "$l" ] && { echo "$l"; return 0; }
    done
    sleep 0.1
  done
  return 1
}
metric() { curl -s -m 2 "$(url "$1" /metrics)" | awk -v k="$2" '$1==k {print $2}'; }
put() { # member key: 0 when acknowledged (HTTP 200); retries a 503 for a while, as
  # a client would (the same key and value: a retried write is harmless)
  local code
  for _ in $(seq 1 30); do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT -d v "$(url "$1" "/v1/kv/$2")")
    [ "$code" = 200 ] && return 0
    [ "$code" = 503 ] || return 1
    sleep 0.1
  done
  return 1
}

L=$(wait_leader 1 2 3) || fail "no leader elected"
F=$(( L % 3 + 1 ))
echo "ok 1 leader c$L, writing through follower c$F"
# The follower learns the leader's client address from its hello: wait for it.
for _ in $(seq 1 100); do put "$F" warm && break; sleep 0.1; done
put "$F" warm || fail "no write through c$F"
o0=$(metric "$F" sc_forward_connections_opened_total)
t0=$(metric "$F" sc_forward_total)
for i in $(seq -w 1 100); do put "$F" "s/$i" || fail "sequential write $i through c$F"; done
o1=$(metric "$F" sc_forward_connections_opened_total)
t1=$(metric "$F" sc_forward_total)
[ "$((t1 - t0))" -eq 100 ] || fail "forwarded $((t1 - t0)) of 100"
[ "$((o1 - o0))" -le 2 ] || fail "100 sequential forwards opened $((o1 - o0)) connections"
echo "ok 2 100 sequential forwards over $((o1 - o0)) new connections (pool: $(metric "$F" sc_forward_connections))"

for c in $(seq 1 8); do
  ( for i in $(seq -w 1 8); do put "$F" "p/$c-$i" || { echo "lost p/$c-$i"; exit 1; }; done ) &
  CL[$c]=$!
done
for c in $(seq 1 8); do wait "${CL[$c]}" || fail "a concurrent client's write failed"; done
o2=$(metric "$F" sc_forward_connections_opened_total)
[ $((o2 - o1)) -le 8 ] || fail "64 writes from 8 clients opened $((o2 - o1)) connections"
echo "ok 3 64 writes from 8 concurrent clients over $((o2 - o1)) new connections"

kill -9 "${PID[$L]}"; wait "${PID[$L]}" 2>/dev/null; unset "PID[$L]"
rest=(); for n in 1 2 3; do [ "$n" != "$L" ] && rest+=("$n"); done
L2=""
for _ in $(seq 1 100); do
  L2=$(wait_leader "${rest[@]}") && [ "$L2" != "$L" ] && break
  sleep 0.1
done
[ -n "$L2" ] && [ "$L2" != "$L" ] || fail "no new leader after killing c$L"
# the follower of step 2 if it still follows: its pool to the dead leader must go
F2=$F; [ "$F2" = "$L2" ] && { F2=${rest[0]}; [ "$F2" = "$L2" ] && F2=${rest[1]}; }
ok=0
for _ in $(seq 1 50); do put "$F2" after && { ok=1; break; }; sleep 0.1; done
[ $ok = 1 ] || fail "no write through c$F2 after the failover"
o3=$(metric "$F2" sc_forward_connections_opened_total)
for i in $(seq -w 1 20); do put "$F2" "a/$i" || fail "write a/$i through c$F2 after the failover"; done
o4=$(metric "$F2" sc_forward_connections_opened_total)
open=$(metric "$F2" sc_forward_connections)
[ $((o4 - o3)) -le 1 ] || fail "after the failover c$F2 opened $((o4 - o3)) connections for 20 writes"
# the connections to the dead leader are gone (c$F2 may be the follower of step 2)
[ "$open" -le 2 ] || fail "c$F2 holds $open forwarding connections after the failover"
echo "ok 4 leader c$L killed; c$L2 leads; c$F2 forwards over $open connection(s)"

count() { curl -s -m 2 "$(url "$L2" "/v1/kv?prefix=$1&count_only=1")" | jq .count; }
[ "$(count s/)" = 100 ] && [ "$(count p/)" = 64 ] && [ "$(count a/)" = 20 ] ||
  fail "writes missing on the new leader: s/ $(count s/) p/ $(count p/) a/ $(count a/)"
echo "ok 5 every acknowledged write is on the new leader"
