#!/usr/bin/env bash
# tls_peers.sh: three sctld with --tls-dir (issue 7: "controllers joining the Raft
# group use the same CA"): the Raft peer transport and the writes a follower
# forwards to the leader run over mutual TLS with controller certificates.
#
#   1. c1 starts first and creates the cluster CA; the operator step of
#      docs/operations.md (copy ca.crt and ca.key into the new controller's
#      --tls-dir before its first start) is done for c2 and c3, which load it
#      (same hash) and issue their own controller.crt.  Each member listens for
#      clients on 127.0.2.N and for peers on 127.0.1.N, so the dialling side's
#      host check needs both hosts in the certificate's SANs (checked with openssl);
#   2. a leader is elected over TLS and a write through a follower (sctl with the
#      admin certificate) is forwarded and acknowledged; the follower's metrics
#      count it as forwarded, and 20 more open at most one TLS connection (the
#      pool keeps them alive: a handshake per write would cost ms each);
#   3. on the peer port, with peer_probe: a certificate from another CA and a
#      node's certificate signed by the cluster CA are refused in the handshake
#      and logged ("tls handshake refused" conn=peer); a controller's valid
#      certificate whose name is not the member its HELLO names is closed and
#      logged ("peer certificate does not match the member"); the same
#      certificate with its own name stays open (the control);
#   4. the leader is killed (kill -9): the others elect a new one, which accepts
#      writes directly and through the remaining follower;
#   5. an impostor (openssl s_server with a cluster-CA certificate for another
#      member, valid for the dead leader's peer host) on the dead leader's peer
#      address: the survivors dial it, refuse it and log the mismatch (side=client);
#   6. a fourth controller joins (CA copied, --join, added through a follower as a
#      learner): it catches up, serves a read and forwards a write; a TCP
#      connection to a peer port that never starts the handshake (opened before
#      step 3) has been closed after the 10 s HELLO timeout;
#   7. the members left stop cleanly on SIGTERM (ASan checks for leaks at exit).
#
# Every process (sctld, openssl s_server) is ended by its PID; data lives in a
# temp dir.  Run: tests/system/tls_peers.sh BUILD/src/sctld/sctld
#   BUILD/src/sctl/sctl BUILD/tests/system/freeport BUILD/tests/system/peer_probe
set -uo pipefail
SCTLD=${1:?usage: tls_peers.sh SCTLD SCTL FREEPORT PEER_PROBE}
SCTL=${2:?usage: tls_peers.sh SCTLD SCTL FREEPORT PEER_PROBE}
FREEPORT=${3:?usage: tls_peers.sh SCTLD SCTL FREEPORT PEER_PROBE}
PROBE=${4:?usage: tls_peers.sh SCTLD SCTL FREEPORT PEER_PROBE}
command -v openssl >/dev/null || { echo "SKIP: needs the openssl CLI"; exit 77; }
dir=$(mktemp -d /tmp/sc-tlspeers-XXXXXX)
declare -A PID PORT PPORT HPORT
SPID=""
IPID=""
cleanup() {
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done
  [ -n "$IPID" ] && { kill -9 "$IPID" 2>/dev/null; wait "$IPID" 2>/dev/null; }
  [ -n "$SPID" ] && { kill -9 "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for n in 1 2 3; do echo "--- c$n log"; tail -25 "$dir/c$n.log"; done
  exit 1
}
for n in 1 2 3 4; do PORT[$n]=$("$FREEPORT"); PPORT[$n]=$("$FREEPORT"); HPORT[$n]=$("$FREEPORT"); done
IC="c1=127.0.1.1:${PPORT[1]},c2=127.0.1.2:${PPORT[2]},c3=127.0.1.3:${PPORT[3]}"
start() { # member [more sctld flags]
  "$SCTLD" --name c$1 --data-dir "$dir/d$1" --listen 127.0.2.$1:${PORT[$1]} \
    --peer-listen 127.0.1.$1:${PPORT[$1]} --initial-cluster "$IC" --election-ticks 30 \
    --tls-dir "$dir/pki$1" --health-listen 127.0.0.1:${HPORT[$1]} "${@:2}" >>"$dir/c$1.log" 2>&1 &
  PID[$1]=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:${HPORT[$1]}/healthz" >/dev/null 2>&1 && return 0
    kill -0 "${PID[$1]}" 2>/dev/null || break
    sleep 0.05
  done
  fail "c$1 did not come up"
}
CA=$dir/pki1/ca.crt
ADM=(--cacert "$CA" --cert "$dir/pki1/admin.crt" --key "$dir/pki1/admin.key")
api() { curl -s -m 2 "${ADM[@]}" "https://127.0.2.$1:${PORT[$1]}$2"; }
sctl() { # member args...: sctl over https with the admin certificate
  local n=$1
  shift
  "$SCTL" --server "https://127.0.2.$n:${PORT[$n]}" --ca "$CA" --cert "$dir/pki1/admin.crt" \
    --key "$dir/pki1/admin.key" "$@"
}
leader_of() { api "$1" /v1/cluster | jq -r '.members[] | select(.leader) | .name' 2>/dev/null | sed 's/^c//'; }
wait_leader() { # among the members given
  for _ in $(seq 1 150); do
    for n in "$@"; do
      l=$(leader_of "$n")
      [ -n "$l" ] && { echo "$l"; return 0; }
    done
    sleep 0.1
  done
  return 1
}
metric() { api "$1" /metrics | awk -v k="$2" '$1==k {print $2}'; }
put() { # member key value: acknowledged within a few retries (503 while electing)
  for _ in $(seq 1 50); do
    out=$(sctl "$1" kv put "$2" "$3" 2>&1) && [[ "$out" == "OK revision "* ]] && return 0
    sleep 0.1
  done
  echo "last: $out"
  return 1
}
wait_log() { # member seconds regex
  for _ in $(seq 1 $(($2 * 10))); do
    grep -Eq "$3" "$dir/c$1.log" && return 0
    sleep 0.1
  done
  return 1
}

# 1. the CA from c1, copied to c2 and c3 before their first start
start 1
[ -f "$dir/pki1/ca.key" ] || fail "c1 made no CA"
for n in 2 3; do
  mkdir -p "$dir/pki$n"
  cp "$dir/pki1/ca.crt" "$dir/pki1/ca.key" "$dir/pki$n/"
  start $n
done
hash=$(grep -o 'msg="cluster CA created".*' "$dir/c1.log" | grep -o 'sha256:[0-9a-f]*')
[ -n "$hash" ] || fail "c1 did not log a created CA"
for n in 2 3; do
  grep -q "msg=\"cluster CA loaded\".* ca_hash=$hash" "$dir/c$n.log" || fail "c$n did not load c1's CA"
done
for n in 1 2 3; do
  openssl verify -CAfile "$CA" "$dir/pki$n/controller.crt" >/dev/null || fail "c$n's certificate"
  sans=$(openssl x509 -in "$dir/pki$n/controller.crt" -noout -subject -ext subjectAltName)
  [[ "$sans" == *"CN = controller:c$n"* && "$sans" == *"IP Address:127.0.1.$n"* &&
    "$sans" == *"IP Address:127.0.2.$n"* ]] || fail "c$n's certificate: $sans"
done
echo "ok 1 c2 and c3 loaded c1's CA ($hash) and issued their own certificates with their hosts"

# 2. a leader over TLS peers; a write through a follower is forwarded over TLS
L=$(wait_leader 1 2 3) || fail "no leader elected over TLS peers"
F=$((L % 3 + 1))
t0=$(metric "$F" sc_forward_total)
put "$F" tls/one 1 || fail "no write acknowledged through follower c$F"
t1=$(metric "$F" sc_forward_total)
[ -n "$t0" ] && [ "$((t1 - t0))" -ge 1 ] || fail "c$F did not forward (sc_forward_total $t0 -> $t1)"
[ "$(sctl "$L" kv get tls/one)" = 1 ] || fail "the forwarded write is not on leader c$L"
grep -q 'msg="peer transport and forwarded writes are TLS' "$dir/c$F.log" || fail "c$F: no TLS peers"
# the pool keeps its TLS connections alive: 20 more writes, at most one new connection
o0=$(metric "$F" sc_forward_connections_opened_total)
for i in $(seq -w 1 20); do put "$F" "tls/seq/$i" "$i" || fail "write $i through c$F"; done
o1=$(metric "$F" sc_forward_connections_opened_total)
[ "$((o1 - o0))" -le 1 ] || fail "20 forwarded writes opened $((o1 - o0)) TLS connections"
echo "ok 2 leader c$L; writes through follower c$F forwarded over TLS ($((o1 - o0)) new connections for 20) and acknowledged"

# an idle TCP connection to follower c$F's peer port that never starts the
# handshake: closed after the HELLO timeout (10 s, peer.h invariant 5); it runs
# in the background while steps 3-5 go on and is checked in step 6
( exec 5<>"/dev/tcp/127.0.1.$F/${PPORT[$F]}" || exit 1
  t0=$(date +%s)
  cat <&5 >/dev/null
  echo $(($(date +%s) - t0)) >"$dir/idle" ) &
IPID=$!

# 3. certificates refused on the peer port (probing c1)
refusals() { grep -c "$1" "$dir/c1.log" || true; }
o=$dir/other
mkdir -p "$o"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other-ca \
  -keyout "$o/oca.key" -out "$o/oca.crt" 2>/dev/null
leaf() { # name subject CA CAKEY [extfile]: a P-256 leaf signed by CA
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
    -keyout "$o/$1.key" -out "$o/$1.csr" 2>/dev/null
  openssl x509 -req -in "$o/$1.csr" -CA "$3" -CAkey "$4" -CAcreateserial -days 1 \
    ${5:+-extfile "$5"} -out "$o/$1.crt" 2>/dev/null || fail "openssl x509 for $1"
}
id_of() { api 1 /v1/cluster | jq -r ".members[] | select(.name==\"$1\") | .id"; }
probe() { # name-of-cert-files dir member
  "$PROBE" --ca "$CA" --cert "$2/$1.crt" --key "$2/$1.key" --addr "127.0.1.1:${PPORT[1]}" \
    --id "$(id_of "$3")" --name "$3"
}
leaf evil "/O=swiftcube:controllers/CN=controller:c2" "$o/oca.crt" "$o/oca.key"
leaf node "/O=swiftcube:nodes/CN=node:x" "$CA" "$dir/pki1/ca.key"
n=$(refusals 'conn=peer')
out=$(probe evil "$o" c2) || fail "a certificate from another CA was kept open: $out"
wait_log 1 5 'tls handshake refused.* cn="controller:c2" reason="sent alert .unknown CA.*conn=peer' ||
  fail "other CA: no refusal logged"
out=$(probe node "$o" c2) || fail "a node certificate was kept open on the peer port: $out"
wait_log 1 5 'tls handshake refused.* cn="node:x, not a controller" reason=.*conn=peer' ||
  fail "node certificate: no refusal logged"
[ "$(refusals 'conn=peer')" -ge $((n + 2)) ] || fail "fewer than two peer refusals logged"
out=$(probe controller "$dir/pki2" c3) || fail "c2's certificate speaking for c3 was kept open: $out"
wait_log 1 5 'msg="peer certificate does not match the member" side=server .*member=c3 cn="controller:c2"' ||
  fail "name mismatch: not logged"
out=$(probe controller "$dir/pki2" c2) && fail "c2's own certificate and name were closed: $out"
[ "$out" = open ] || fail "control probe: $out"
echo "ok 3 peer port: other CA and node certificate refused in the handshake, another member's name closed, all logged"

# 4. kill the leader; a new one accepts writes, directly and through a follower
kill -9 "${PID[$L]}"
wait "${PID[$L]}" 2>/dev/null
unset "PID[$L]"
rest=()
for n in 1 2 3; do [ "$n" != "$L" ] && rest+=("$n"); done
L2=""
for _ in $(seq 1 100); do
  L2=$(wait_leader "${rest[@]}") && [ "$L2" != "$L" ] && break
  sleep 0.1
done
[ -n "$L2" ] && [ "$L2" != "$L" ] || fail "no new leader after killing c$L"
F2=${rest[0]}
[ "$F2" = "$L2" ] && F2=${rest[1]}
put "$L2" tls/two 2 || fail "new leader c$L2 refused a write"
put "$F2" tls/three 3 || fail "no write through follower c$F2 after the failover"
for k in one two three; do
  [ -n "$(sctl "$L2" kv get tls/$k)" ] || fail "tls/$k missing on c$L2"
done
echo "ok 4 leader c$L killed; c$L2 leads and accepts writes, also forwarded by c$F2"

# 5. an impostor on the dead leader's peer address: a cluster certificate valid
#    for that host, but naming another member
printf 'subjectAltName=IP:127.0.1.%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$L" >"$o/ext"
leaf imp "/O=swiftcube:controllers/CN=controller:c$F2" "$CA" "$dir/pki1/ca.key" "$o/ext"
openssl s_server -quiet -tls1_3 -accept "127.0.1.$L:${PPORT[$L]}" -cert "$o/imp.crt" \
  -key "$o/imp.key" -CAfile "$CA" -Verify 1 </dev/null >"$dir/s_server.log" 2>&1 &
SPID=$!
ok=0
for n in "${rest[@]}"; do
  wait_log "$n" 10 "msg=\"peer certificate does not match the member\" side=client .*member=c$L cn=\"controller:c$F2\"" &&
    ok=$((ok + 1))
done
kill -9 "$SPID"
wait "$SPID" 2>/dev/null
SPID=""
[ "$ok" = 2 ] || fail "the survivors did not both refuse the impostor at c$L's address ($ok of 2)"
put "$F2" tls/four 4 || fail "no write after the impostor"
echo "ok 5 an impostor at c$L's peer address refused and logged by both survivors"

# 6. a fourth controller joins the running cluster: the CA copied first, started
#    with --join, added as a learner through a follower (a forwarded write), it
#    catches up over TLS, serves a read and forwards a write
mkdir -p "$dir/pki4"
cp "$CA" "$dir/pki1/ca.key" "$dir/pki4/"
IC="$IC,c4=127.0.1.4:${PPORT[4]}"
start 4 --join
grep -q "msg=\"cluster CA loaded\".* ca_hash=$hash" "$dir/c4.log" || fail "c4 did not load the CA"
code=$(curl -s -m 5 -o "$dir/last.json" -w '%{http_code}' "${ADM[@]}" -X POST \
  -d "{\"name\":\"c4\",\"peer\":\"127.0.1.4:${PPORT[4]}\"}" \
  "https://127.0.2.$F2:${PORT[$F2]}/v1/cluster/members")
[ "$code" = 200 ] || fail "adding c4 through c$F2: $code $(cat "$dir/last.json")"
got=""
for _ in $(seq 1 100); do
  got=$(sctl 4 kv get tls/four 2>/dev/null) && [ "$got" = 4 ] && break
  sleep 0.1
done
[ "$got" = 4 ] || fail "c4 did not catch up (tls/four: '$got')"
put 4 tls/five 5 || fail "no write through c4"
[ "$(sctl "$L2" kv get tls/five)" = 5 ] || fail "c4's write is not on the leader"
rest+=(4)
for _ in $(seq 1 150); do [ -s "$dir/idle" ] && break; sleep 0.1; done
kill -0 "$IPID" 2>/dev/null && { kill -9 "$IPID"; wait "$IPID" 2>/dev/null; IPID=""; fail "an idle connection to c$F's peer port is still open"; }
wait "$IPID"
IPID=""
idle=$(cat "$dir/idle")
[ "$idle" -ge 9 ] && [ "$idle" -le 13 ] || fail "the idle peer connection was closed after ${idle} s, want ~10"
echo "ok 6 c4 joined with the copied CA, caught up over TLS, reads and forwards writes; an idle peer connection closed after $idle s"

# 7. a clean stop of the survivors (under ASan: no leak of TLS connections at exit)
for n in "${rest[@]}"; do
  kill -TERM "${PID[$n]}"
  wait "${PID[$n]}"
  st=$?
  unset "PID[$n]"
  [ "$st" = 0 ] || fail "c$n exited with $st after SIGTERM"
  grep -q 'msg="stopped"' "$dir/c$n.log" || fail "c$n did not log its stop"
done
echo "ok 7 the survivors stopped cleanly"
