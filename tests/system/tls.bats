#!/usr/bin/env bats
# tls.bats: sctld --tls-dir on loopback (issue 7, first wiring step): the CA and
# the controller's and admin's certificates it makes, sctl over https:// with the
# admin certificate (flags and config file), handshakes refused for a client
# without a certificate, one from another CA, and plain HTTP, each refusal in
# sctld's log with its reason; /healthz on the loopback plain-HTTP listener only;
# a restart keeps the CA (same hash) and the certificates.
#
# Run: meson test -C BUILD tls --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SCTL=BUILD/src/sctl/sctl \
#   SC_FREEPORT=BUILD/tests/system/freeport bats tests/system/tls.bats

load sctld_lib

# Starts sctld with --tls-dir under $D; waits for its plain /healthz listener.
start_tls_sctld() {
  "$SCTLD" --data-dir "$D/data" --listen "127.0.0.1:$PORT" --tls-dir "$PKI" \
    --health-listen "127.0.0.1:$HPORT" "$@" >>"$D/sctld.out" 2>>"$D/sctld.log" 3>&- &
  echo $! >"$D/pid"
  local i
  for i in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$HPORT/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$D/pid")" 2>/dev/null || break
    sleep 0.05
  done
  echo "sctld did not come up; log:" >&2
  tail -20 "$D/sctld.log" >&2
  return 1
}

setup_file() {
  : "${SCTLD:?SCTLD must name the sctld binary}"
  : "${SCTL:?SCTL must name the sctl binary}"
  command -v openssl >/dev/null || skip "needs the openssl CLI"
  export D=$BATS_FILE_TMPDIR/tls PKI=$BATS_FILE_TMPDIR/tls/pki
  mkdir -p "$D"
  export PORT HPORT
  PORT=$("$SC_FREEPORT")
  HPORT=$("$SC_FREEPORT")
  start_tls_sctld
}

teardown_file() {
  [ -f "$D/pid" ] && stop_sctld "$(cat "$D/pid")"
}

setup() {
  unset SCTL_SERVER
  export SCTL_CONFIG=$BATS_TEST_TMPDIR/no-config
}

# sctl over https with the admin certificate from --tls-dir.
sctl_admin() {
  "$SCTL" --server "https://127.0.0.1:$PORT" --ca "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" "$@"
}

# refusals: how many "tls handshake refused" lines the log has now.
refusals() {
  grep -c 'msg="tls handshake refused"' "$D/sctld.log" || true
}

# new_refusal N PATTERN: a refusal line after the first N matches the extended regex.
new_refusal() {
  grep 'msg="tls handshake refused"' "$D/sctld.log" | tail -n +$(($1 + 1)) |
    grep -Eq "$2"
}

@test "--tls-dir creates the CA, the controller's and the admin's certificates and logs the CA hash" {
  [ -f "$PKI/ca.crt" ] && [ -f "$PKI/controller.crt" ] && [ -f "$PKI/admin.crt" ]
  [ "$(stat -c %a "$PKI/ca.key")" = 600 ]
  [ "$(stat -c %a "$PKI/controller.key")" = 600 ]
  [ "$(stat -c %a "$PKI/admin.key")" = 600 ]
  run openssl verify -CAfile "$PKI/ca.crt" "$PKI/controller.crt" "$PKI/admin.crt"
  [ "$status" -eq 0 ]
  run openssl x509 -in "$PKI/controller.crt" -noout -subject -ext subjectAltName
  [[ "$output" == *"CN = controller:default"* ]] && [[ "$output" == *"IP Address:127.0.0.1"* ]]
  run openssl x509 -in "$PKI/admin.crt" -noout -subject
  [[ "$output" == *"CN = admin"* ]]
  # the logged hash is kubeadm's: SHA-256 of the CA's DER SubjectPublicKeyInfo
  want=$(openssl x509 -in "$PKI/ca.crt" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -r | cut -d' ' -f1)
  grep -q "msg=\"cluster CA created\".* ca_hash=sha256:$want" "$D/sctld.log"
}

@test "sctl with the admin certificate: kv put and get over https (flags, then a config file)" {
  run sctl_admin kv put tls/k one
  [ "$status" -eq 0 ] && [[ "$output" == "OK revision "* ]]
  run sctl_admin kv get tls/k
  [ "$status" -eq 0 ] && [ "$output" = one ]
  # config file: server, ca, cert, key; relative paths are relative to the file
  cp "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key" "$BATS_TEST_TMPDIR/"
  printf 'server = https://localhost:%s\nca = ca.crt\ncert = admin.crt\nkey = admin.key\n' \
    "$PORT" >"$BATS_TEST_TMPDIR/config"
  (cd / && SCTL_CONFIG=$BATS_TEST_TMPDIR/config "$SCTL" kv put tls/k two)
  SCTL_CONFIG=$BATS_TEST_TMPDIR/config run "$SCTL" kv get tls/k
  [ "$status" -eq 0 ] && [ "$output" = two ]
  # --server https://... from the flag takes ca/cert/key from the config file
  SCTL_CONFIG=$BATS_TEST_TMPDIR/config run "$SCTL" --server "https://127.0.0.1:$PORT" kv get tls/k
  [ "$status" -eq 0 ] && [ "$output" = two ]
  # the config sctld wrote for the operator on its first start works as it is
  [ "$(stat -c %a "$PKI/admin.conf")" = 600 ]
  grep -qx "server = https://127.0.0.1:$PORT" "$PKI/admin.conf"
  (cd / && SCTL_CONFIG=$PKI/admin.conf run "$SCTL" kv get tls/k && [ "$output" = two ])
  # https without a CA is a usage error naming what is missing
  run "$SCTL" --server "https://127.0.0.1:$PORT" kv get tls/k
  [ "$status" -eq 2 ] && [[ "$output" == *"the cluster CA file is needed"* ]]
}

@test "a client without a certificate is refused in the handshake, and sctld logs why" {
  n=$(refusals)
  run curl -sS --cacert "$PKI/ca.crt" "https://127.0.0.1:$PORT/v1/kv/tls/k"
  # curl 7.88 over TLS 1.3 sees the alert as 35, 55 (send) or 56 (receive)
  [[ "$status" =~ ^(35|55|56)$ ]]
  [[ "$output" != *'"kvs"'* ]]
  wait_for 5 new_refusal "$n" "cn=\"\" reason=\"sent alert 'certificate required'\""
  # sctl without --cert/--key: unavailable, with a hint
  n=$(refusals)
  run "$SCTL" --server "https://127.0.0.1:$PORT" --ca "$PKI/ca.crt" kv get tls/k
  [ "$status" -eq 3 ] && [[ "$output" == *"no client certificate was given"* ]]
  wait_for 5 new_refusal "$n" "certificate required"
}

@test "a certificate from another CA is refused in the handshake, and sctld logs its CN and why" {
  o=$BATS_TEST_TMPDIR
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=other-ca -keyout "$o/oca.key" -out "$o/oca.crt" 2>/dev/null
  # the same subject as the real admin certificate, signed by the other CA
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/O=swiftcube:admins/CN=admin" -keyout "$o/evil.key" -out "$o/evil.csr" 2>/dev/null
  openssl x509 -req -in "$o/evil.csr" -CA "$o/oca.crt" -CAkey "$o/oca.key" -CAcreateserial \
    -days 1 -out "$o/evil.crt" 2>/dev/null
  n=$(refusals)
  run curl -sS --cacert "$PKI/ca.crt" --cert "$o/evil.crt" --key "$o/evil.key" \
    "https://127.0.0.1:$PORT/v1/kv/tls/k"
  [[ "$status" =~ ^(35|55|56)$ ]]
  [[ "$output" != *'"kvs"'* ]]
  wait_for 5 new_refusal "$n" "cn=\"admin\" reason=\"sent alert 'unknown CA'"
  n=$(refusals)
  run "$SCTL" --server "https://127.0.0.1:$PORT" --ca "$PKI/ca.crt" --cert "$o/evil.crt" \
    --key "$o/evil.key" kv get tls/k
  [ "$status" -eq 3 ]
  wait_for 5 new_refusal "$n" "unknown CA"
}

@test "plain HTTP to the TLS port is not served; the health listener serves only /healthz" {
  run curl -sS "http://127.0.0.1:$PORT/v1/kv/tls/k"
  [ "$status" -ne 0 ] && [[ "$output" != *'"kvs"'* ]]
  run curl -sS "http://127.0.0.1:$PORT/healthz"
  [ "$status" -ne 0 ] && [[ "$output" != *'"status"'* ]]
  run curl -sS "http://127.0.0.1:$HPORT/healthz"
  [ "$status" -eq 0 ] && [[ "$output" == *'"status":"ok"'* ]]
  run curl -sS -w ' %{http_code}' "http://127.0.0.1:$HPORT/v1/kv/tls/k"
  [[ "$output" == *"serves only /healthz"*" 404" ]]
  # and the API port is no plain HTTP listener for the health check either
  run curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$PORT/healthz"
  [ "$status" -eq 0 ] && [[ "$output" == *'"status":"ok"'* ]]
}

@test "start-up refuses a non-loopback health address and a bad --peer-listen before making a CA" {
  o=$BATS_TEST_TMPDIR
  run "$SCTLD" --data-dir "$o/d1" --listen 127.0.0.1:0 --health-listen "0.0.0.0:$HPORT"
  [ "$status" -eq 1 ] && [[ "$output" == *"--health-listen must be a loopback address"* ]]
  # --tls-dir with --peer-listen is allowed (tls_peers.sh), but every address is
  # checked before anything is written
  run "$SCTLD" --data-dir "$o/d2" --listen 127.0.0.1:0 --tls-dir "$o/pki" \
    --peer-listen nonsense
  [ "$status" -eq 1 ] && [[ "$output" == *"--peer-listen must be HOST:PORT"* ]]
  [ ! -e "$o/pki/ca.key" ]
}

@test "a restart keeps the CA (same hash) and the certificates; the admin certificate still works" {
  before=$(sha256sum "$PKI/ca.crt" "$PKI/ca.key" "$PKI/controller.crt" "$PKI/admin.crt")
  hash=$(grep -o 'msg="cluster CA created".*' "$D/sctld.log" | grep -o 'sha256:[0-9a-f]*')
  [ -n "$hash" ]
  pid=$(cat "$D/pid") # started by setup_file's shell: not ours to wait for
  kill -TERM "$pid"
  wait_gone "$pid"
  [ "$(grep -c 'msg="stopped"' "$D/sctld.log")" -eq 1 ]
  start_tls_sctld
  grep -q "msg=\"cluster CA loaded\".* ca_hash=$hash" "$D/sctld.log"
  [ "$(grep -c 'msg="certificate kept"' "$D/sctld.log")" -eq 2 ]
  [ "$(sha256sum "$PKI/ca.crt" "$PKI/ca.key" "$PKI/controller.crt" "$PKI/admin.crt")" = "$before" ]
  run sctl_admin kv get tls/k
  [ "$status" -eq 0 ] && [ "$output" = two ]
}
