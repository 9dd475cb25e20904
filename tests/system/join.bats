#!/usr/bin/env bats
# join.bats: a node joins a mutual-TLS sctld with a bootstrap token and runs real
# Cells (issue 7 item 1): sctl token create|list|revoke, slet --join pinning the
# CA by hash, the node certificate used for every request and the watch, the
# refusals (wrong secret, unknown or revoked, expired and used-up tokens, a CA
# that does not match the pin, plain HTTP), each with a clear error and a log
# line; what a node certificate may not do (another node's objects, tokens); and
# the certificate renewed before it expires.
#
# Run (root: Cells): meson test -C BUILD join --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SCTL=BUILD/src/sctl/sctl SLET=BUILD/src/slet/slet \
#   SC_FREEPORT=BUILD/tests/system/freeport SC_SRCDIR=$PWD bats tests/system/join.bats

load sctld_lib

setup_file() {
  : "${SCTLD:?}" "${SCTL:?}" "${SLET:?}" "${SC_FREEPORT:?}" "${SC_SRCDIR:?}"
  [ "$(id -u)" -eq 0 ] || skip "Cells need root"
  command -v openssl >/dev/null || skip "needs the openssl CLI"
  export F=$BATS_FILE_TMPDIR PKI=$BATS_FILE_TMPDIR/pki
  IMG=$(hello_image "$F") # sctld_lib: the image in $F/store, its key in $F/trust
  export IMG PORT HPORT JPORT
  PORT=$("$SC_FREEPORT")
  HPORT=$("$SC_FREEPORT")
  JPORT=$("$SC_FREEPORT")
  export API=https://127.0.0.1:$PORT JOIN=https://127.0.0.1:$JPORT CGP=slet-join-$$
  # 180 s certificates: renewed 20 s after they are issued (2/3 of the lifetime,
  # which counts the 5 minutes notBefore is backdated for clock skew)
  "$SCTLD" --data-dir "$F/sc" --listen "127.0.0.1:$PORT" --tls-dir "$PKI" \
    --health-listen "127.0.0.1:$HPORT" --join-listen "127.0.0.1:$JPORT" --node-cert-sec 180 \
    >"$F/sctld.out" 2>"$F/sctld.log" 3>&- &
  echo $! >"$F/sctld.pid"
  wait_for 30 curl -sf "http://127.0.0.1:$HPORT/healthz"
  HASH=$(grep -o 'ca_hash=sha256:[0-9a-f]*' "$F/sctld.log" | head -1 | cut -d= -f2)
  export HASH
  [ -n "$HASH" ]
}

teardown_file() {
  local p
  for p in "$F"/slet*.pid "$F/sctld.pid"; do
    [ -f "$p" ] || continue
    kill "$(cat "$p")" 2>/dev/null || true
    wait_gone "$(cat "$p")"
  done
}

setup() {
  unset SCTL_SERVER
  export SCTL_CONFIG=$BATS_TEST_TMPDIR/no-config
}

wait_gone() {
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

sctl_admin() { "$SCTL" --server "$API" --ca "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }
# sctl with the certificate node NAME joined with
sctl_node() {
  local n=$1
  shift
  "$SCTL" --server "$API" --ca "$PKI/ca.crt" --cert "$F/$n/pki/node.crt" --key "$F/$n/pki/node.key" "$@"
}

# start_slet NAME TOKEN [CA_HASH]: slet --join in the background, pid in $F/slet-NAME.pid
start_slet() {
  "$SLET" agent --server "$API" --name "$1" --data-dir "$F/$1" --store "$F/store" \
    --trust "$F/trust" --cgroup-parent "$CGP-$1" --grace 2 --listen 127.0.0.1:0 \
    --join "$JOIN" --token "$2" --ca-hash "${3:-$HASH}" >>"$F/slet-$1.log" 2>&1 &
  echo $! >"$F/slet-$1.pid"
}

# join_fails NAME TOKEN [CA_HASH]: slet --join exits 1 (within 20 s); its stderr in $output
join_fails() {
  run timeout 20 "$SLET" agent --server "$API" --name "$1" --data-dir "$F/$1" --store "$F/store" \
    --trust "$F/trust" --cgroup-parent "$CGP-$1" --join "$JOIN" --token "$2" --ca-hash "${3:-$HASH}"
  [ "$status" -eq 1 ]
}

node_ready() { sctl_admin get nodes | grep -Eq "^$1 +true"; }
running_ready() {
  [ "$(sctl_admin get instances -o json | jq '[.items[] | select(.status.phase == "running" and .status.ready)] | length')" -eq "$1" ]
}

@test "a node joins with a token, and its Cells run with every request over mutual TLS" {
  local t
  t=$(sctl_admin token create --description "first node")
  [[ "$t" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]]
  run sctl_admin token list
  [[ "$output" == *"${t%%.*}  0/1"*"valid  first node"* ]]
  start_slet n1 "$t"
  wait_for 20 node_ready n1 || { cat "$F/slet-n1.log"; false; }
  grep -q 'msg="joined"' "$F/slet-n1.log"
  # node:n1, from the cluster CA, with a key that never left the node
  run openssl verify -CAfile "$PKI/ca.crt" "$F/n1/pki/node.crt"
  [ "$status" -eq 0 ]
  run openssl x509 -in "$F/n1/pki/node.crt" -noout -subject
  [[ "$output" == *"CN = node:n1"* ]]
  [ "$(stat -c %a "$F/n1/pki/node.key")" = 600 ]
  # the token is spent: one use of one, and the log says who used it
  run sctl_admin token list
  [[ "$output" == *"${t%%.*}  1/1"*"used"* ]]
  grep -q "msg=\"token used\" token=${t%%.*} node=n1" "$F/sctld.log"
  # Cells: the watch over TLS brings the Assignments, the statuses go back as node:n1
  cat >"$F/web.yaml" <<EOF
kind: Deployment
metadata: {name: web}
spec:
  image: hello@$IMG
  replicas: 2
  resources: {cpu: 100m, memory: 32Mi}
  ports: [{name: http, container: 8080}]
EOF
  sctl_admin apply -f "$F/web.yaml"
  wait_for 20 running_ready 2 || { tail -20 "$F/slet-n1.log"; false; }
  ! grep -q 'msg="request refused"' "$F/sctld.log"
  # sctl logs: sctld fetches from the node's HTTPS logs endpoint with its controller
  # certificate; the endpoint refuses anyone else (here: the admin certificate)
  local inst url
  inst=$(sctl_admin get instances -o json | jq -r '.items[0].metadata.name')
  run sctl_admin logs "$inst"
  [ "$status" -eq 0 ]
  [[ "$output" == *"listening on"* ]]
  url=$(sctl_admin get nodes n1 -o json | jq -r .status.logs)
  [[ "$url" == https://127.0.0.1:* ]]
  run curl -s --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$url/logs/$inst"
  [ "$status" -ne 0 ]
  # a restart keeps the certificate (no second token is spent)
  kill "$(cat "$F/slet-n1.pid")"
  wait_gone "$(cat "$F/slet-n1.pid")"
  start_slet n1 "$t"
  wait_for 20 grep -q 'msg="node certificate kept"' "$F/slet-n1.log"
  wait_for 20 running_ready 2
}

@test "refused joins: wrong secret, unknown, revoked, expired and used-up tokens, a CA that is not the pinned one" {
  local t id
  t=$(sctl_admin token create --uses 2)
  id=${t%%.*}
  # a wrong secret for a real id
  join_fails bad1 "$id.0123456789abcdef"
  [[ "$output" == *"HTTP 401: token $id: wrong secret"* ]]
  grep -q "msg=\"join refused\".*reason=\"token $id: wrong secret\"" "$F/sctld.log"
  # an id nobody created
  join_fails bad2 "zzzzzz.0123456789abcdef"
  [[ "$output" == *"token zzzzzz: no such token"* ]]
  # expired
  local old
  old=$(sctl_admin token create --ttl 1s)
  sleep 1.5
  join_fails bad3 "$old"
  [[ "$output" == *"token ${old%%.*} expired at "* ]]
  grep -q "reason=\"token ${old%%.*} expired at" "$F/sctld.log"
  run sctl_admin token list
  [[ "$output" == *"${old%%.*}  0/1"*"expired"* ]]
  # a CA hash that does not match what the controller serves: refused before any token is sent
  join_fails bad4 "$t" "sha256:$(printf '0%.0s' $(seq 64))"
  [[ "$output" == *"does not match --ca-hash"* ]]
  # revoked
  run sctl_admin token revoke "$id"
  [ "$status" -eq 0 ]
  [ "$output" = "token/$id revoked" ]
  join_fails bad5 "$t"
  [[ "$output" == *"token $id: no such token (never created, or revoked)"* ]]
  # used up: a single-use token admits one node, not two
  local one
  one=$(sctl_admin token create)
  start_slet n2 "$one"
  wait_for 20 node_ready n2
  join_fails bad6 "$one"
  [[ "$output" == *"token ${one%%.*} was already used 1 of 1 times"* ]]
  # none of the refused names got a certificate or a Node
  for n in bad1 bad2 bad3 bad4 bad5 bad6; do
    [ ! -f "$F/$n/pki/node.crt" ]
    run sctl_admin get nodes "$n"
    [ "$status" -eq 4 ]
  done
  # nonsense at the join listener: no token, a malformed one, a wrong path
  run curl -s --cacert "$PKI/ca.crt" -X POST "$JOIN/v1/join" -d '{}'
  [[ "$output" == *'"unauthorized"'*"Authorization: Bearer ID.SECRET"* ]]
  run curl -s --cacert "$PKI/ca.crt" -H "Authorization: Bearer nope" -X POST "$JOIN/v1/join" -d '{}'
  [[ "$output" == *'"unauthorized"'* ]]
  run curl -s --cacert "$PKI/ca.crt" "$JOIN/v1/kv"
  [[ "$output" == *"serves only GET /v1/cluster/ca and POST /v1/join"* ]]
}

@test "four nodes joining at once with one multi-use token all get in (the use is counted through the log)" {
  local t n
  t=$(sctl_admin token create --uses 0 --description "a rack at once")
  for n in m1 m2 m3 m4; do start_slet "$n" "$t"; done
  for n in m1 m2 m3 m4; do
    wait_for 30 node_ready "$n" || { cat "$F/slet-$n.log"; false; }
  done
  run sctl_admin token list
  [[ "$output" =~ ${t%%.*}\ +4/any\ .*valid\ +a\ rack\ at\ once ]]
  for n in m1 m2 m3 m4; do
    kill "$(cat "$F/slet-$n.pid")"
    wait_gone "$(cat "$F/slet-$n.pid")"
    rm -f "$F/slet-$n.pid"
    sctl_admin delete node "$n" >/dev/null
  done
}

@test "a node certificate writes only for its own node and cannot read tokens; plain HTTP is refused and logged" {
  run sctl_node n1 token list
  [ "$status" -eq 1 ]
  [[ "$output" == *"node n1 may not read /v1/tokens"*"403 forbidden"* ]]
  run sctl_node n1 kv put /registry/heartbeats/n2 forged
  [ "$status" -eq 1 ]
  [[ "$output" == *"node n1 may not change /v1/kv/%2Fregistry%2Fheartbeats%2Fn2"* ]]
  run sctl_node n1 nodes cordon n2
  [ "$status" -eq 1 ]
  run sctl_node n1 kv put /registry/heartbeats/n1 mine
  [ "$status" -eq 0 ]
  # the raw store holds the tokens too: no key reads but its own heartbeat
  run sctl_node n1 kv ls /registry/
  [ "$status" -eq 1 ]
  [[ "$output" == *"node n1 may not read /v1/kv"* ]]
  # another node's Instance: its status is not n1's to write
  local other
  other=$(sctl_admin get instances -o json | jq -r '.items[0].metadata.name')
  run curl -s --cacert "$PKI/ca.crt" --cert "$F/n2/pki/node.crt" --key "$F/n2/pki/node.key" \
    -X PUT "$API/v1/instances/$other/status" -d '{"status":{"phase":"failed"}}'
  [[ "$output" == *'"forbidden"'* ]]
  grep -q 'msg="request refused".*cn="node:n2"' "$F/sctld.log"
  # an Instance is named after its Assignment: n1 cannot write one under another name
  local mine rev
  mine=$(sctl_admin get assignments -o json | jq -r '[.items[] | select(.spec.node == "n1")][0].metadata.name')
  rev=$(sctl_admin get assignments -o json | jq -r '[.items[] | select(.spec.node == "n1")][0].spec.revision')
  [ -n "$mine" ] && [ "$mine" != null ] && [ -n "$rev" ] && [ "$rev" != null ]
  run curl -s --cacert "$PKI/ca.crt" --cert "$F/n1/pki/node.crt" --key "$F/n1/pki/node.key" \
    -X PUT "$API/v1/instances/forged" -d "{\"kind\":\"Instance\",\"metadata\":{\"name\":\"forged\"},
      \"spec\":{\"assignment\":\"$mine\",\"node\":\"n1\",\"revision\":\"$rev\"}}"
  [[ "$output" == *'"forbidden"'* ]]
  run sctl_node n1 get nodes
  [ "$status" -eq 0 ]
  # plain HTTP to the TLS port: no answer, and a log line that says what it was
  run curl -s "http://127.0.0.1:$PORT/v1/kv"
  [ "$status" -ne 0 ]
  wait_for 5 grep -q 'msg="tls handshake refused".*reason="plain HTTP sent to a TLS port"' "$F/sctld.log"
}

@test "the node certificate is renewed before it expires, and the node stays Ready" {
  local before renewals
  before=$(openssl x509 -in "$F/n1/pki/node.crt" -noout -serial)
  renewals=$(grep -c 'msg="node certificate renewed"' "$F/slet-n1.log" || true)
  # issued with 180 s: due 20 s after issue, checked every 10 s by the heartbeat thread
  renewed() { [ "$(grep -c 'msg="node certificate renewed"' "$F/slet-n1.log")" -gt "$renewals" ]; }
  wait_for 45 renewed || { tail "$F/slet-n1.log"; false; }
  [ "$(openssl x509 -in "$F/n1/pki/node.crt" -noout -serial)" != "$before" ]
  run openssl verify -CAfile "$PKI/ca.crt" "$F/n1/pki/node.crt"
  [ "$status" -eq 0 ]
  grep -q 'msg="certificate signed" for=renew node=n1' "$F/sctld.log"
  node_ready n1
  run sctl_node n1 get nodes
  [ "$status" -eq 0 ]
}
