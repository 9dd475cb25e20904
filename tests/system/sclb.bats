#!/usr/bin/env bats
# sclb.bats: traffic through a real load balancer to real Cells (issue 6): a real
# sctld, a real `slet agent` running examples/hello/hello.c as Cells on a bridge
# of the test's own (sclbt0), and `sclb` programming a real nginx and a real
# HAProxy from the Endpoints the leader keeps.
#
#   nginx: every ready instance is reached through the LB; the status reports
#     what was applied
#   readiness failing on one instance -> the LB never sends to it; back when it
#     recovers
#   a rolling update under a continuous client loop -> zero failed requests
#     (drained from the LB before its Cell gets SIGTERM)
#   HAProxy: the same reachability
#   delete -> the LB's port closes, the Endpoints are gone
#   canary step of 10 % -> while paused, 1,000 requests through nginx: 10 % +- 3 %
#     to the new revision; promote -> all to it
#   blue-green -> all to the old set until the new one is fully ready, then all
#     to the new one
# Root only (Cells, a bridge).  Every daemon is ended by its PID; the bridge is
# deleted at the end.
#
# Run: meson test -C BUILD sclb --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SLET=BUILD/src/slet/slet SCLB=BUILD/src/sclb/sclb \
#   SC_FREEPORT=BUILD/tests/system/freeport SC_SRCDIR=. bats tests/system/sclb.bats

load sctld_lib # wait_for, wait_gone, hello_image

setup_file() {
  : "${SCTLD:?}" "${SLET:?}" "${SCLB:?}" "${SC_FREEPORT:?}" "${SC_SRCDIR:?}"
  [ "$(id -u)" -eq 0 ] || skip "Cells need root"
  command -v nginx >/dev/null || skip "needs nginx (scripts/deps.sh installs it)"
  command -v haproxy >/dev/null || skip "needs haproxy (scripts/deps.sh installs it)"
  export F=$BATS_FILE_TMPDIR
  IMG=$(hello_image "$F")
  export IMG
  export PORT_API=$("$SC_FREEPORT") PORT_LOGS=$("$SC_FREEPORT")
  export LB1=$("$SC_FREEPORT") LB2=$("$SC_FREEPORT") LB3=$("$SC_FREEPORT") LB4=$("$SC_FREEPORT")
  export API=http://127.0.0.1:$PORT_API
  "$SCTLD" --data-dir "$F/sc" --listen "127.0.0.1:$PORT_API" >"$F/sctld.log" 2>&1 3>&- &
  echo $! >"$F/sctld.pid"
  wait_for 30 curl -sf "$API/healthz"
  "$SLET" agent --server "$API" --name n1 --data-dir "$F/data" --store "$F/store" \
    --trust "$F/trust" --listen "127.0.0.1:$PORT_LOGS" --cgroup-parent "sclb-test-$$" \
    --cell-net bridge --bridge sclbt0 --cell-range 10.89.7.0/24 --grace 2 >>"$F/slet.log" 2>&1 3>&- &
  echo $! >"$F/slet.pid"
  wait_for 30 curl -sf "http://127.0.0.1:$PORT_LOGS/healthz"
  "$SCLB" --server "$API" --dir "$F/lb" --listen-addr 127.0.0.1 >>"$F/sclb.log" 2>&1 3>&- &
  echo $! >"$F/sclb.pid"
}

teardown_file() {
  local p
  for p in sclb slet sctld; do
    [ -f "$F/$p.pid" ] || continue
    kill "$(cat "$F/$p.pid")" 2>/dev/null || true
    wait_gone "$(cat "$F/$p.pid")"
  done
  ip link del sclbt0 2>/dev/null || true
}

# deploy NAME REPLICAS PROVIDER LISTEN [EXTRA_ENV_JSON] [UPDATE_JSON]
deploy() {
  curl -sf -X PUT "$API/v1/deployments/$1" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"$1\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":$2,\"env\":${5:-{\}},\"update\":${6:-{\}},
    \"health\":{\"readiness\":{\"http\":\"/healthz\",\"port\":\"http\",\"period\":\"1s\",\"failureThreshold\":1}},
    \"resources\":{\"cpu\":\"50m\",\"memory\":\"16Mi\"},
    \"ports\":[{\"name\":\"http\",\"container\":8080,
      \"expose\":{\"via\":\"lb\",\"provider\":\"$3\",\"listen\":$4,\"protocol\":\"http\"}}]}}" >/dev/null
}

# served NAME N: the LB applied the Endpoints' current generation with N endpoints
served() {
  curl -s "$API/v1/endpoints/$1" | jq -e --argjson n "$2" \
    '.status.served == true and .status.endpoints == $n and .status.generation == .metadata.generation
     and (.spec.endpoints | length) == $n' >/dev/null
}

# hits PORT N: N requests through the LB; prints the instance names that answered,
# sorted and unique; fails if a request failed
hits() {
  local i out
  for i in $(seq "$2"); do
    out=$(curl -sf --max-time 2 "http://127.0.0.1:$1/") || { echo "request $i failed" >&2; return 1; }
    echo "$out" | sed -n 's/^hello from \([^ ]*\) .*/\1/p'
  done | sort -u | tr '\n' ' '
}

names_of() { # DEPLOYMENT: its ready instances' names, sorted
  curl -s "$API/v1/instances?selector=deployment%3D$1" |
    jq -r '[.items[] | select(.status.ready) | .metadata.name] | sort | join(" ")'
}

@test "nginx: every ready instance is reached through the load balancer" {
  deploy web 2 nginx "$LB1"
  wait_for 60 served web-http 2
  local want
  want="$(names_of web) "
  [ "$(hits "$LB1" 30)" = "$want" ]
  run curl -s "$API/v1/endpoints/web-http"
  [ "$(echo "$output" | jq -r '.status.provider, .status.listen' | tr '\n' ' ')" = "nginx $LB1 " ]
  # settled: sclb's status writes and the endpoints loop do not rewrite it in turn
  local g1 g2
  g1=$(curl -s "$API/v1/endpoints/web-http" | jq .metadata.generation)
  sleep 2
  g2=$(curl -s "$API/v1/endpoints/web-http" | jq .metadata.generation)
  [ "$g1" = "$g2" ] || { echo "generation moved $g1 -> $g2 with nothing changing" >&2; return 1; }
}

@test "an instance whose readiness fails gets no request; it is back once it recovers" {
  local sick addr
  sick=$(names_of web | cut -d' ' -f1)
  addr=$(curl -s "$API/v1/instances/$sick" | jq -r '.status.addresses[0]')
  curl -sf "http://$addr:8080/fail" >/dev/null
  wait_for 30 served web-http 1
  run hits "$LB1" 30
  [ "$status" -eq 0 ] && [[ "$output" != *"$sick"* ]]
  curl -sf "http://$addr:8080/recover" >/dev/null
  wait_for 30 served web-http 2
  [[ "$(hits "$LB1" 30)" == *"$sick"* ]]
}

@test "a rolling update under a client loop fails no request" {
  ( fails=0 n=0
    while [ ! -f "$F/stop" ]; do
      curl -sf --max-time 2 "http://127.0.0.1:$LB1/" >/dev/null || fails=$((fails + 1))
      n=$((n + 1))
    done
    echo "$n $fails" >"$F/loop" ) 3>&- &
  local loop=$!
  sleep 1
  deploy web 2 nginx "$LB1" '{"V":"2"}'
  wait_for 60 bash -c "curl -s '$API/v1/deployments/web' | jq -e '.status.rollout.phase == \"complete\" and .status.observedGeneration == .metadata.generation'"
  wait_for 30 served web-http 2
  sleep 1
  touch "$F/stop"
  wait "$loop"
  read -r n fails <"$F/loop"
  echo "# $n requests during the rollout, $fails failed" >&3
  [ "$n" -gt 20 ] && [ "$fails" = 0 ]
  # the new instances are the ones served
  [ "$(hits "$LB1" 20)" = "$(names_of web) " ]
}

@test "HAProxy: every ready instance is reached; delete closes the port" {
  deploy hap 2 haproxy "$LB2"
  wait_for 60 served hap-http 2
  [ "$(hits "$LB2" 30)" = "$(names_of hap) " ]
  curl -sf -X DELETE "$API/v1/deployments/hap" >/dev/null
  wait_for 30 bash -c "! curl -s --max-time 1 http://127.0.0.1:$LB2/ >/dev/null"
  [ "$(curl -s "$API/v1/endpoints/hap-http" | jq -r .error.code)" = not_found ]
  curl -sf -X DELETE "$API/v1/deployments/web" >/dev/null
  wait_for 30 bash -c "! curl -s --max-time 1 http://127.0.0.1:$LB1/ >/dev/null"
}

# share DEPLOYMENT PORT N REVISION: how many of N requests (one curl, keep-alive)
# reached that revision; fails unless all N were answered
share() {
  curl -s "$API/v1/instances?selector=deployment%3D$1" |
    jq -r '.items[] | "\(.metadata.name) \(.spec.revision)"' >"$F/share.map"
  curl -s --max-time 60 $(for _ in $(seq "$3"); do printf 'http://127.0.0.1:%s/ ' "$2"; done) |
    sed -n 's/^hello from \([^ ]*\) .*/\1/p' >"$F/share.out"
  [ "$(wc -l <"$F/share.out")" = "$3" ] || { echo "$(wc -l <"$F/share.out") of $3 answered" >&2; return 1; }
  awk -v r="$4" 'NR == FNR { rev[$1] = $2; next } rev[$1] == r { n++ } END { print n + 0 }' \
    "$F/share.map" "$F/share.out"
}
phase_of() { curl -s "$API/v1/deployments/$1" | jq -r '.status.rollout.phase'; }
rev_of() { curl -s "$API/v1/deployments/$1" | jq -r '.status.rollout.revision'; }

@test "canary step of 10 %: a tenth of 1,000 requests through nginx while paused; promote: all" {
  local upd='{"strategy":"canary","steps":[{"weight":10}]}'
  deploy can 4 nginx "$LB3" '{}' "$upd"
  wait_for 60 served can-http 4
  deploy can 4 nginx "$LB3" '{"V":"2"}' "$upd"
  wait_for 60 bash -c "[ \"\$(curl -s '$API/v1/deployments/can' | jq -r .status.rollout.phase)\" = paused ]"
  wait_for 30 served can-http 5
  local n r2
  r2=$(rev_of can)
  n=$(share can "$LB3" 1000 "$r2")
  echo "# canary share: $n of 1000" >&3
  [ "$n" -ge 70 ] && [ "$n" -le 130 ]
  # promote (what sctl rollout promote writes): on to all four
  local d
  d=$(curl -s "$API/v1/deployments/can")
  curl -sf -X PUT "$API/v1/deployments/can/status" -d "$(echo "$d" |
    jq -c '{metadata: {revision: .metadata.revision}, status: (.status | .rollout.promoted = true)}')" >/dev/null
  wait_for 90 bash -c "[ \"\$(curl -s '$API/v1/deployments/can' | jq -r .status.rollout.phase)\" = complete ]"
  wait_for 30 served can-http 4
  [ "$(share can "$LB3" 40 "$r2")" = 40 ]
  curl -sf -X DELETE "$API/v1/deployments/can" >/dev/null
}

@test "blue-green: all to the old set until the new one is ready, then all to the new" {
  local upd='{"strategy":"blue-green"}'
  deploy bg 2 nginx "$LB4" '{}' "$upd"
  wait_for 60 served bg-http 2
  local r1 r2 n
  r1=$(rev_of bg)
  # the new set starts unhealthy for 3 s: everything still goes to the old one
  deploy bg 2 nginx "$LB4" '{"HELLO_HEALTHY_AFTER":"3"}' "$upd"
  wait_for 30 bash -c "[ \"\$(curl -s '$API/v1/deployments/bg' | jq -r .status.rollout.revision)\" != '$r1' ]"
  r2=$(rev_of bg)
  sleep 1
  n=$(share bg "$LB4" 40 "$r1")
  [ "$n" = 40 ]
  wait_for 60 bash -c "[ \"\$(curl -s '$API/v1/deployments/bg' | jq -r .status.rollout.phase)\" = complete ]"
  wait_for 30 served bg-http 2
  [ "$(share bg "$LB4" 40 "$r2")" = 40 ]
  curl -sf -X DELETE "$API/v1/deployments/bg" >/dev/null
}

@test "a load balancer that cannot take its port is reported in the status, then recovers" {
  # the API's own port is taken (by sctld): nginx cannot listen there
  deploy clash 1 nginx "$PORT_API"
  wait_for 60 bash -c "curl -s '$API/v1/endpoints/clash-http' | jq -e '.status.served == false and (.status.error | length > 0)'"
  run curl -s "$API/v1/endpoints/clash-http"
  echo "# status: $(echo "$output" | jq -c .status)" >&3
  [[ "$(echo "$output" | jq -r .status.error)" == *"$PORT_API"* || "$(echo "$output" | jq -r .status.error)" == *"in use"* ]]
  # the API still answers: nothing took its port away
  curl -sf "$API/healthz" >/dev/null
  local free
  free=$("$SC_FREEPORT")
  deploy clash 1 nginx "$free"
  wait_for 60 served clash-http 1
  [ "$(hits "$free" 5)" = "$(names_of clash) " ]
  curl -sf -X DELETE "$API/v1/deployments/clash" >/dev/null
}

@test "a revision whose readiness never passes gets no traffic and is rolled back" {
  local upd='{"strategy":"rolling","maxSurge":1,"maxUnavailable":0,"progressDeadline":"4s"}'
  deploy rb 2 nginx "$LB4" '{}' "$upd"
  wait_for 60 served rb-http 2
  local r1 r2
  r1=$(rev_of rb)
  deploy rb 2 nginx "$LB4" '{"HELLO_UNHEALTHY":"1"}' "$upd"
  wait_for 30 bash -c "[ \"\$(curl -s '$API/v1/deployments/rb' | jq -r .status.rollout.revision)\" != '$r1' ]"
  r2=$(rev_of rb)
  # while it tries: every request still goes to the old revision
  [ "$(share rb "$LB4" 40 "$r1")" = 40 ]
  wait_for 60 bash -c "[ \"\$(curl -s '$API/v1/deployments/rb' | jq -r .status.rollout.phase)\" = rolled-back ]"
  [[ "$(curl -s "$API/v1/deployments/rb" | jq -r .status.rollout.reason)" == "revision $r2: 0/2 available"* ]]
  [ "$(rev_of rb)" = "$r1" ]
  # the unready instance is gone; all requests on the old revision
  wait_for 30 bash -c "[ \"\$(curl -s '$API/v1/assignments?selector=deployment%3Drb' | jq '[.items[] | select(.spec.revision == \"$r2\")] | length')\" = 0 ]"
  [ "$(share rb "$LB4" 40 "$r1")" = 40 ]
  curl -sf -X DELETE "$API/v1/deployments/rb" >/dev/null
}
