#!/usr/bin/env bats
# sched_loop.bats: the objects API and the leader's scheduler loop against a real
# sctld (no slet: nodes are registered and kept alive with curl, as slet does):
# spread over nodes, the unschedulable reason in the Deployment's status, scale
# down removing the newest, an update replacing every Assignment with the new
# generation's (and storing its Revision), compare-and-swap conflicts, refused
# bodies that change nothing, delete collecting Assignments and Revisions, and a
# node whose heartbeat lease expires dropping out of scheduling.
#
# Run: meson test -C BUILD sched_loop --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SC_FREEPORT=BUILD/tests/system/freeport \
#   bats tests/system/sched_loop.bats

load sctld_lib

setup_file() {
  : "${SCTLD:?SCTLD must name the sctld binary}"
  start_sctld "$BATS_FILE_TMPDIR/main"
  export PORT SCTLD_PID
  export U="http://127.0.0.1:$PORT"
}

# every test starts with every registered node alive for 2 minutes: the file runs
# longer than an early test's 60 s heartbeat, and a node whose lease runs out
# mid-test is lost and its Assignments move (the tests that lose a node on purpose
# give it a short lease after this)
setup() {
  all_alive
}

teardown_file() {
  [ -n "${SCTLD_PID:-}" ] && stop_sctld "$SCTLD_PID"
}

# node NAME CPU_MILLIS MEMORY_BYTES [LABELS_JSON]: registers a Node
node() {
  curl -sf -X PUT "$U/v1/nodes/$1" -d "{\"kind\":\"Node\",\"metadata\":{\"name\":\"$1\",\"labels\":${4:-{\}}},
    \"spec\":{\"capacity\":{\"cpuMillis\":$2,\"memoryBytes\":$3}}}" >/dev/null
}

# heartbeat NAME TTL: the node's heartbeat key on a fresh lease
heartbeat() {
  local id
  id=$(curl -sf -X POST "$U/v1/leases" -d "{\"ttl\":$2}" | jq -r .id)
  curl -sf -X PUT --data-binary up "$U/v1/kv/%2Fregistry%2Fheartbeats%2F$1?lease=$id" >/dev/null
}

# deploy NAME REPLICAS [EXTRA_SPEC_JSON_FIELDS] [MEMORY]: PUTs a Deployment, prints the answer
deploy() {
  curl -s -X PUT "$U/v1/deployments/$1" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"$1\"},
    \"spec\":{\"image\":\"hello:1.0\",\"replicas\":$2,\"resources\":{\"cpu\":\"100m\",\"memory\":\"${4:-64Mi}\"}${3:-}}}"
}

# until_eq EXPECTED CMD...: retries CMD for up to 10 s until it prints EXPECTED
until_eq() {
  local want=$1 got=
  shift
  for _ in $(seq 1 100); do
    got=$("$@") && [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  echo "wanted '$want', last got '$got' from: $*" >&2
  return 1
}

assigned_on() { # DEPLOYMENT: "node:count ..." sorted
  curl -s "$U/v1/assignments?selector=deployment%3D$1" |
    jq -r '[.items[].spec.node] | group_by(.) | map("\(.[0]):\(length)") | join(" ")'
}
names_of() { # DEPLOYMENT
  curl -s "$U/v1/assignments?selector=deployment%3D$1" | jq -r '[.items[].metadata.name] | join(" ")'
}
status_of() { curl -s "$U/v1/deployments/$1" | jq -r ".status.$2"; }

@test "replicas spread over the ready nodes, and the reason for what fits nowhere" {
  node n1 4000 8589934592 '{"zone":"b"}'
  node n2 4000 8589934592 '{"zone":"b"}'
  node n3 4000 33554432 '{"zone":"a"}'
  heartbeat n1 60
  heartbeat n2 60
  heartbeat n3 60
  run deploy web 4
  [ "$(echo "$output" | jq -r .result)" = created ]
  until_eq "n1:2 n2:2" assigned_on web
  until_eq 4 status_of web assigned
  [ "$(status_of web unschedulable)" = null ]
  # a selector only n3 matches, and n3 is too small for 1Gi
  run deploy big 1 ',"placement":{"nodeSelector":{"zone":"a"}}' 1Gi
  [ "$(echo "$output" | jq -r .result)" = created ]
  until_eq "0/3 nodes: 2 not matching zone=a, 1 insufficient memory" status_of big unschedulable
  [ "$(assigned_on big)" = "" ]
}

@test "scale down removes the newest; an update replaces every assignment" {
  r1=$(curl -s "$U/v1/assignments?selector=deployment%3Dweb" | jq -r '.items[0].spec.revision')
  [[ "$r1" == web-?????????? ]]
  until_eq "$r1-0 $r1-1 $r1-2 $r1-3" names_of web
  run deploy web 2
  [ "$(echo "$output" | jq -r .result)" = updated ]
  until_eq "$r1-0 $r1-1" names_of web
  # scaling keeps the template: no new Revision
  [ "$(curl -s "$U/v1/revisions?selector=deployment%3Dweb" | jq '.items | length')" = 1 ]
  run deploy web 2 ',"env":{"LOG_LEVEL":"debug"}'
  [ "$(echo "$output" | jq -r '.result, .object.metadata.generation' | tr '\n' ' ')" = "updated 3 " ]
  r2=$(curl -s "$U/v1/revisions?selector=deployment%3Dweb" | jq -r --arg r1 "$r1" '.items[].metadata.name | select(. != $r1)')
  [ -n "$r2" ]
  until_eq "$r2-0 $r2-1" names_of web
  [ "$(curl -s "$U/v1/revisions/$r2" | jq -r .spec.template.env.LOG_LEVEL)" = debug ]
  until_eq 3 status_of web observedGeneration
  # the same spec again writes nothing
  rev=$(curl -s "$U/v1/deployments/web" | jq .metadata.revision)
  run deploy web 2 ',"env":{"LOG_LEVEL":"debug"}'
  [ "$(echo "$output" | jq -r .result)" = unchanged ]
  [ "$(curl -s "$U/v1/deployments/web" | jq .metadata.revision)" = "$rev" ]
}

@test "compare-and-swap conflicts and refused bodies change nothing" {
  before=$(curl -s "$U/v1/deployments/web")
  rev=$(echo "$before" | jq .metadata.revision)
  stale=$((rev - 1))
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X PUT "$U/v1/deployments/web" -d \
    "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"revision\":$stale},\"spec\":{\"image\":\"x:1\"}}")
  [ "$code" = 409 ] && [ "$(jq -r .error.code "$BATS_TEST_TMPDIR/out")" = revision_mismatch ]
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X PUT "$U/v1/deployments/web" -d \
    '{"kind":"Deployment","metadata":{"name":"web"},"spec":{"image":"hello:1.0","replicas":-3}}')
  [ "$code" = 400 ] && [ "$(jq -r .error.field "$BATS_TEST_TMPDIR/out")" = spec.replicas ]
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X PUT "$U/v1/deployments/web" -d \
    '{"kind":"Deployment","metadata":{"name":"other"},"spec":{"image":"hello:1.0"}}')
  [ "$code" = 400 ] && [ "$(jq -r .error.field "$BATS_TEST_TMPDIR/out")" = metadata.name ]
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X POST "$U/v1/deployments" -d \
    '{"kind":"Deployment","metadata":{"name":"web"},"spec":{"image":"hello:1.0"}}')
  [ "$code" = 409 ] && [ "$(jq -r .error.code "$BATS_TEST_TMPDIR/out")" = already_exists ]
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X PUT "$U/v1/assignments/web-2-0" -d '{}')
  [ "$code" = 405 ]
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' "$U/v1/deployments?selector=app%20in%20(a")
  [ "$code" = 400 ] && [[ "$(jq -r .error.message "$BATS_TEST_TMPDIR/out")" == *"column"* ]]
  after=$(curl -s "$U/v1/deployments/web")
  [ "$(echo "$before" | jq -S 'del(.status)')" = "$(echo "$after" | jq -S 'del(.status)')" ]
  # a status write keeps the spec, and its status is checked like any body
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$U/v1/deployments/web/status" -d '{"status":{"ready":1}}')
  [ "$code" = 200 ]
  [ "$(curl -s "$U/v1/deployments/web" | jq -r .spec.replicas)" = 2 ]
  # ... and the scheduler puts back the status it owns (assigned, observedGeneration)
  until_eq 2 status_of web assigned
  code=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code}' -X PUT "$U/v1/deployments/web/status" -d '{"status":{"raedy":1}}')
  [ "$code" = 400 ] && [[ "$(jq -r .error.message "$BATS_TEST_TMPDIR/out")" == *"did you mean 'ready'"* ]]
}

@test "a watch streams whole objects; delete collects assignments and revisions" {
  curl -sN --max-time 5 "$U/v1/assignments?watch=1&selector=deployment%3Dgone" >"$BATS_TEST_TMPDIR/w" 3>&- &
  wpid=$!
  sleep 0.3
  deploy gone 1 >/dev/null
  until_eq 1 bash -c "curl -s '$U/v1/assignments?selector=deployment%3Dgone' | jq '.items | length'"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/deployments/gone")
  [ "$code" = 200 ]
  until_eq "" names_of gone
  until_eq 0 bash -c "curl -s '$U/v1/revisions?selector=deployment%3Dgone' | jq '.items | length'"
  wait "$wpid" || true
  run jq -r 'select(.type) | "\(.type) \(.object.metadata.name)"' "$BATS_TEST_TMPDIR/w"
  [[ "${lines[0]}" == "ADDED gone-"??????????"-0" ]]
  [[ "${lines[1]}" == "DELETED gone-"??????????"-0" ]]
  code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$U/v1/deployments/gone")
  [ "$code" = 404 ]
}

@test "a node whose heartbeat lease expires is no longer scheduled to" {
  node n4 64000 68719476736
  heartbeat n4 1
  deploy late 1 ',"placement":{"nodeSelector":{"only":"n4"}}' >/dev/null
  curl -sf -X PUT "$U/v1/nodes/n4" -d '{"kind":"Node","metadata":{"name":"n4","labels":{"only":"n4"}},"spec":{"capacity":{"cpuMillis":64000,"memoryBytes":68719476736}}}' >/dev/null
  sleep 2.5 # the 1 s lease has expired and its key is gone
  deploy late 2 ',"placement":{"nodeSelector":{"only":"n4"}}' >/dev/null
  until_eq "0/4 nodes: 3 not matching only=n4, 1 not ready" status_of late unschedulable
}

@test "a node NotReady past the grace period has its Assignments placed on another" {
  node n5 64000 68719476736 '{"pool":"lost"}'
  node n6 64000 68719476736 '{"pool":"lost"}'
  # timed from n5's last heartbeat (placing may itself take a while on a loaded machine)
  local t0=$EPOCHREALTIME
  heartbeat n5 2
  heartbeat n6 60
  deploy moved 2 ',"placement":{"nodeSelector":{"pool":"lost"}}' >/dev/null
  until_eq "n5:1 n6:1" assigned_on moved
  local before
  before=$(curl -s "$U/v1/assignments?selector=deployment%3Dmoved" | jq -r '.items[] | select(.spec.node == "n5") | .metadata.name')
  # n5's 2 s lease runs out; 0.5 s of grace (sctld's default) later its Assignment moves
  until_eq "n6:2" assigned_on moved
  local took
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%d", (b - a) * 1000}')
  echo "# n5's Assignment placed again after $took ms" >&3
  [ "$took" -ge 2000 ] # not before the lease and the grace period
  [ "$(status_of moved assigned)" = 2 ]
  # the replacement takes the lost one's name (the lowest free ordinal), on n6
  [ "$(curl -s "$U/v1/assignments/$before" | jq -r .spec.node)" = n6 ]
  # back: schedulable again, nothing moves back by itself
  heartbeat n5 60
  deploy moved 3 ',"placement":{"nodeSelector":{"pool":"lost"}}' >/dev/null
  until_eq "n5:1 n6:2" assigned_on moved
  # gone, so that later tests do not spread onto nodes whose leases run out
  curl -sf -X DELETE "$U/v1/deployments/moved" >/dev/null
  curl -sf -X DELETE "$U/v1/nodes/n5" >/dev/null
  curl -sf -X DELETE "$U/v1/nodes/n6" >/dev/null
}

# instance NAME DEPLOYMENT NODE READY ADDRESS REVISION: what slet would report
instance() { # (a plain PUT keeps the stored status: the status goes by /status, as slet's does)
  curl -sf -X PUT "$U/v1/instances/$1" -d "{\"kind\":\"Instance\",\"metadata\":{\"name\":\"$1\",
    \"labels\":{\"deployment\":\"$2\",\"node\":\"$3\"}},\"spec\":{\"assignment\":\"$1\",\"node\":\"$3\",
    \"revision\":\"$6\"}}" >/dev/null
  curl -sf -X PUT "$U/v1/instances/$1/status" \
    -d "{\"status\":{\"phase\":\"running\",\"ready\":$4,\"addresses\":[\"$5\"]}}" >/dev/null
}
endpoints_of() { # NAME: "instance=address:port/weight ..." or "absent"
  local out
  out=$(curl -s "$U/v1/endpoints/$1")
  if [ "$(echo "$out" | jq -r '.error.code // empty')" = not_found ]; then echo absent; return; fi
  echo "$out" | jq -r '[.spec.endpoints[] | "\(.instance)=\(.address):\(.port)/\(.weight)"] | join(" ")'
}

@test "Endpoints: one per exposed port, ready instances only, gone with the Deployment" {
  node n1 4000 8589934592 '{"zone":"b"}'
  heartbeat n1 60
  deploy shop 2 ',"ports":[{"name":"http","container":8080,"expose":{"via":"lb","provider":"nginx","listen":9000}},{"container":9100}]' >/dev/null
  until_eq 2 status_of shop assigned
  rev=$(curl -s "$U/v1/assignments?selector=deployment%3Dshop" | jq -r '.items[0].spec.revision')
  # instances are named after their Assignments (an instance without one is no endpoint)
  local a b
  a=$(curl -s "$U/v1/assignments?selector=deployment%3Dshop" | jq -r '.items[0].metadata.name')
  b=$(curl -s "$U/v1/assignments?selector=deployment%3Dshop" | jq -r '.items[1].metadata.name')
  # exposed with no ready instance: an Endpoints with no endpoints; the unexposed port has none
  until_eq "" endpoints_of shop-http
  [ "$(endpoints_of shop-9100)" = absent ]
  [ "$(curl -s "$U/v1/endpoints/shop-http" | jq -r '.spec.expose.listen, .spec.port.container, .metadata.labels.deployment' | tr '\n' ' ')" = "9000 8080 shop " ]
  instance "$a" shop n1 false 10.88.0.7 "$rev"
  instance "$b" shop n1 true 10.88.0.8 "$rev"
  until_eq "$b=10.88.0.8:8080/100" endpoints_of shop-http
  instance "$a" shop n1 true 10.88.0.7 "$rev"
  until_eq "$a=10.88.0.7:8080/100 $b=10.88.0.8:8080/100" endpoints_of shop-http
  # not ready again: out at once
  instance "$b" shop n1 false 10.88.0.8 "$rev"
  until_eq "$a=10.88.0.7:8080/100" endpoints_of shop-http
  # the programmer's status survives the loop's next write
  curl -sf -X PUT "$U/v1/endpoints/shop-http/status" -d '{"status":{"applied":3}}' >/dev/null
  instance "$b" shop n1 true 10.88.0.8 "$rev"
  until_eq "$a=10.88.0.7:8080/100 $b=10.88.0.8:8080/100" endpoints_of shop-http
  [ "$(curl -s "$U/v1/endpoints/shop-http" | jq -r .status.applied)" = 3 ]
  # the port stops being exposed: its Endpoints go; delete: nothing left
  deploy shop 2 ',"ports":[{"name":"http","container":8080}]' >/dev/null
  until_eq absent endpoints_of shop-http
  deploy shop 2 ',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}]' >/dev/null
  until_eq "$a=10.88.0.7:8080/100 $b=10.88.0.8:8080/100" endpoints_of shop-http
  curl -sf -X DELETE "$U/v1/deployments/shop" >/dev/null
  until_eq absent endpoints_of shop-http
}

# ready_all DEPLOYMENT: reports every Assignment of the Deployment's as a ready
# instance (address 10.9.0.K), as slet would once its readiness passes
ready_all() {
  local k=0 a rev
  while read -r a rev; do
    k=$((k + 1))
    instance "$a" "$1" n1 true "10.9.0.$k" "$rev"
  done < <(curl -s "$U/v1/assignments?selector=deployment%3D$1" |
    jq -r '.items[] | select(.spec.draining != true) | "\(.metadata.name) \(.spec.revision)"')
}
revs_of() { # DEPLOYMENT: "revision:count[d]..." of its Assignments (d = draining)
  curl -s "$U/v1/assignments?selector=deployment%3D$1" |
    jq -r '[.items[] | .spec.revision + (if .spec.draining then "(d)" else "" end)] | group_by(.) | map("\(.[0] | sub("^[a-z]+-"; "")):\(length)") | join(" ")'
}
rollout_of() { curl -s "$U/v1/deployments/$1" | jq -r '.status.rollout | "\(.phase) \(.reason // "")"'; }
phase_of() { curl -s "$U/v1/deployments/$1" | jq -r '.status.rollout.phase'; }
draining_of() { # DEPLOYMENT: how many of its Assignments are draining
  curl -s "$U/v1/assignments?selector=deployment%3D$1" | jq '[.items[] | select(.spec.draining)] | length'
}

@test "rolling update: surge 1, nothing unavailable, drained before removal, then complete" {
  node n1 64000 68719476736
  heartbeat n1 60
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"rolling","maxSurge":1,"maxUnavailable":0}'
  deploy roll 2 "$spec" >/dev/null
  until_eq 2 status_of roll assigned
  ready_all roll
  until_eq "complete " rollout_of roll
  local r1
  r1=$(curl -s "$U/v1/assignments?selector=deployment%3Droll" | jq -r '.items[0].spec.revision' | sed 's/^roll-//')
  deploy roll 2 "$spec"',"env":{"V":"2"}' >/dev/null
  # one new beside the two old (surge 1), none of the old goes while it is not ready
  until_eq "progressing " rollout_of roll
  sleep 0.5
  [[ "$(revs_of roll)" == *"$r1:2"* ]]
  [ "$(revs_of roll | wc -w)" = 2 ]
  ready_all roll
  # one old is drained first: out of the Endpoints while its assignment remains
  until_eq 1 draining_of roll
  [ "$(endpoints_of roll-http | wc -w)" = 2 ]
  # ... then removed after the drain window, and the rollout goes on to the end
  for _ in 1 2 3 4 5 6; do ready_all roll; sleep 1; done
  until_eq "complete " rollout_of roll
  [[ "$(revs_of roll)" != *"$r1"* ]]
  [ "$(status_of roll assigned)" = 2 ]
}

@test "a revision that never becomes ready is rolled back after progressDeadline" {
  # the first revision with time to become ready (a loaded CI machine), then 1 s
  local first=',"update":{"strategy":"rolling","maxSurge":1,"maxUnavailable":0,"progressDeadline":"1m"}'
  local spec=',"update":{"strategy":"rolling","maxSurge":1,"maxUnavailable":0,"progressDeadline":"1s"}'
  deploy_complete back 2 "$first"
  local r1
  r1=$(curl -s "$U/v1/assignments?selector=deployment%3Dback" | jq -r '.items[0].spec.revision' | sed 's/^back-//')
  deploy back 2 "$spec"',"env":{"BROKEN":"1"}' >/dev/null
  until_eq "progressing " rollout_of back
  # the new instance never reports ready: after the deadline, back to r1
  until_eq rolled-back phase_of back
  [[ "$(rollout_of back)" == *"0/2 available after 1s"* ]]
  until_eq "$r1:2" revs_of back
  # the spec is the user's: unchanged; a new change starts a new rollout
  [ "$(curl -s "$U/v1/deployments/back" | jq -r .spec.env.BROKEN)" = 1 ]
  deploy back 2 "$spec"',"env":{"FIXED":"1"}' >/dev/null
  until_eq "progressing " rollout_of back
}

# set_rollout_flag DEPLOYMENT FLAG: what `sctl rollout promote|abort` writes
set_rollout_flag() {
  local d
  d=$(curl -s "$U/v1/deployments/$1")
  curl -sf -X PUT "$U/v1/deployments/$1/status" -d "$(echo "$d" |
    jq -c --arg f "$2" '{metadata: {revision: .metadata.revision}, status: (.status | .rollout[$f] = true)}')" >/dev/null
}
weights_of() { # ENDPOINTS: the distinct "revision-suffix:weight xN" of its endpoints
  curl -s "$U/v1/endpoints/$1" |
    jq -r '[.spec.endpoints[] | "\(.revision | sub("^[a-z]+-"; "")):\(.weight)"] | group_by(.) | map("\(.[0])x\(length)") | join(" ")'
}

@test "canary: a share of the traffic by weight, paused until promoted; abort rolls back" {
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"canary","canaryWeight":25}'
  all_alive
  deploy can 4 "$spec" >/dev/null
  until_eq 4 status_of can assigned
  ready_all can
  until_eq "complete " rollout_of can
  local r1 r2
  r1=$(curl -s "$U/v1/deployments/can" | jq -r .status.rollout.revision | sed 's/^can-//')
  deploy can 4 "$spec"',"env":{"V":"2"}' >/dev/null
  # one canary (25% of 4) beside the four old ones; ready: paused, 25% of the weight
  until_eq 5 bash -c "curl -s '$U/v1/assignments?selector=deployment%3Dcan' | jq '.items | length'"
  ready_all can
  until_eq paused phase_of can
  r2=$(curl -s "$U/v1/deployments/can" | jq -r .status.rollout.revision | sed 's/^can-//')
  # 1 x 100 against 4 x 75: the canary gets 100 / 400 = 25 % of the requests
  until_eq "$(printf '%s\n' "$r1:75x4" "$r2:100x1" | sort | paste -sd' ')" weights_of can-http
  sleep 1.5 # paused stays paused: nothing else moves
  [ "$(revs_of can)" = "$r1:4 $r2:1" ] || [ "$(revs_of can)" = "$r2:1 $r1:4" ]
  # promote: a rolling update to the end, equal weights again
  set_rollout_flag can promoted
  for _ in 1 2 3 4 5 6 7 8; do ready_all can; sleep 1; done
  until_eq "complete " rollout_of can
  until_eq "$r2:4" revs_of can
  until_eq "$r2:100x4" weights_of can-http
  # another change, then abort: back to r2 with its four
  deploy can 4 "$spec"',"env":{"V":"3"}' >/dev/null
  until_eq 5 bash -c "curl -s '$U/v1/assignments?selector=deployment%3Dcan' | jq '.items | length'"
  ready_all can
  until_eq paused phase_of can
  set_rollout_flag can aborted
  until_eq "rolled-back aborted by the user" rollout_of can
  for _ in 1 2 3 4; do sleep 1; done
  until_eq "$r2:4" revs_of can
}

# clear_rollout_flag DEPLOYMENT FLAG: what `sctl rollout resume` writes
clear_rollout_flag() {
  local d
  d=$(curl -s "$U/v1/deployments/$1")
  curl -sf -X PUT "$U/v1/deployments/$1/status" -d "$(echo "$d" |
    jq -c --arg f "$2" '{metadata: {revision: .metadata.revision}, status: (.status | del(.rollout[$f]))}')" >/dev/null
}
step_of() { curl -s "$U/v1/deployments/$1" | jq -r '"\(.status.rollout.phase) \(.status.rollout.step)"'; }
# all_alive: every registered node's heartbeat renewed for 2 minutes (a node of an
# earlier test whose lease ran out would be lost mid-test and its instances moved)
all_alive() {
  local n
  for n in $(curl -s "$U/v1/nodes" | jq -r '.items[].metadata.name'); do heartbeat "$n" 120; done
}
# deploy_complete NAME REPLICAS SPEC: a first revision, placed, ready, complete
deploy_complete() {
  all_alive
  deploy "$1" "$2" "$3" >/dev/null
  until_eq "$2" status_of "$1" assigned
  ready_all "$1"
  until_eq "complete " rollout_of "$1"
}
sorted_revs_of() { revs_of "$1" | tr ' ' '\n' | sort | paste -sd' '; }
assignments_n() { curl -s "$U/v1/assignments?selector=deployment%3D$1" | jq '.items | length'; }

@test "canary steps: a timed step moves on by itself, the next waits; pause holds a promote" {
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"canary","maxSurge":5,"steps":[{"weight":10,"pause":"8s"},{"weight":50}]}'
  deploy_complete cst 10 "$spec"
  local r1 r2
  r1=$(curl -s "$U/v1/deployments/cst" | jq -r .status.rollout.revision | sed 's/^cst-//')
  deploy cst 10 "$spec"',"env":{"V":"2"}' >/dev/null
  # step 1: one new instance (10 % of 10) beside the ten old ones
  until_eq 11 assignments_n cst
  ready_all cst
  until_eq "paused 0" step_of cst
  r2=$(curl -s "$U/v1/deployments/cst" | jq -r .status.rollout.revision | sed 's/^cst-//')
  # 1 x 100 against 10 x 90: 100 / 1000 = 10 % of the requests to the canary
  until_eq "$(printf '%s\n' "$r1:90x10" "$r2:100x1" | sort | paste -sd' ')" weights_of cst-http
  # after its 8 s pause (long enough for a loaded machine to look first), step 2 by itself: five new (50 %), waiting for promote
  until_eq 15 assignments_n cst
  ready_all cst
  until_eq "paused 1" step_of cst
  # 5 x 250 against 10 x 125: half the requests each way
  until_eq "$(printf '%s\n' "$r1:125x10" "$r2:250x5" | sort | paste -sd' ')" weights_of cst-http
  sleep 1.5
  [ "$(step_of cst)" = "paused 1" ]
  [ "$(assignments_n cst)" = 15 ]
  # paused by the user, a promote waits for resume: nothing moves
  set_rollout_flag cst pausedByUser
  set_rollout_flag cst promoted
  sleep 1.5
  [ "$(step_of cst)" = "paused 1" ]
  [ "$(draining_of cst)" = 0 ]
  [ "$(revs_of cst)" = "$r1:10 $r2:5" ] || [ "$(revs_of cst)" = "$r2:5 $r1:10" ]
  # resumed: the promote takes effect, a rolling update to the end
  clear_rollout_flag cst pausedByUser
  for _ in $(seq 1 12); do ready_all cst; sleep 1; [ "$(phase_of cst)" = complete ] && break; done
  until_eq "complete " rollout_of cst
  until_eq "$r2:10" revs_of cst
  until_eq "$r2:100x10" weights_of cst-http
}

@test "a canary instance that stops being ready during its step rolls the canary back" {
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"canary","steps":[{"weight":25,"pause":"1h"}]}'
  deploy_complete cfail 4 "$spec"
  local r1
  r1=$(curl -s "$U/v1/deployments/cfail" | jq -r .status.rollout.revision | sed 's/^cfail-//')
  deploy cfail 4 "$spec"',"env":{"V":"2"}' >/dev/null
  until_eq 5 assignments_n cfail
  ready_all cfail
  until_eq "paused 0" step_of cfail
  # the canary's readiness fails (as slet reports it): the step has failed
  local c
  c=$(curl -s "$U/v1/assignments?selector=deployment%3Dcfail" |
    jq -r --arg r "cfail-$r1" '.items[] | select(.spec.revision != $r) | .metadata.name')
  instance "$c" cfail n1 false 10.9.0.9 "$(curl -s "$U/v1/assignments/$c" | jq -r .spec.revision)"
  until_eq rolled-back phase_of cfail
  [[ "$(rollout_of cfail)" == *"canary step 1 (weight 25%) failed: 0/1 canary instances available"* ]]
  for _ in 1 2 3 4; do sleep 1; done
  until_eq "$r1:4" revs_of cfail
}

@test "blue-green keepOld: the old set stays out of the pool, and comes back at once on undo" {
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"blue-green","keepOld":"30s"}'
  deploy_complete bgk 2 "$spec"
  local r1 r2 old_names
  r1=$(curl -s "$U/v1/deployments/bgk" | jq -r .status.rollout.revision | sed 's/^bgk-//')
  old_names=$(names_of bgk)
  deploy bgk 2 "$spec"',"env":{"V":"2"}' >/dev/null
  until_eq 4 assignments_n bgk
  ready_all bgk
  # the switch: the old two leave the Endpoints but stay, past the 2 s drain window
  until_eq "complete " rollout_of bgk
  r2=$(curl -s "$U/v1/deployments/bgk" | jq -r .status.rollout.revision | sed 's/^bgk-//')
  sleep 3
  [ "$(revs_of bgk)" = "$r1(d):2 $r2:2" ] || [ "$(revs_of bgk)" = "$r2:2 $r1(d):2" ]
  until_eq "$r2:100x2" weights_of bgk-http
  # back to the first template: its kept Assignments return, nothing new is placed
  deploy bgk 2 "$spec" >/dev/null
  until_eq "$(printf '%s\n' "$r1:2" "$r2(d):2" | sort | paste -sd' ')" sorted_revs_of bgk
  until_eq "$r1:100x2" weights_of bgk-http
  for n in $old_names; do [[ " $(names_of bgk) " == *" $n "* ]]; done
  until_eq "complete " rollout_of bgk
}

# serve_ep ENDPOINTS: what sclb writes once the load balancer serves the object
serve_ep() {
  local o
  o=$(curl -s "$U/v1/endpoints/$1")
  curl -sf -X PUT "$U/v1/endpoints/$1/status" -d "$(echo "$o" | jq -c '{metadata: {revision: .metadata.revision},
    status: {served: true, provider: "nginx", generation: .metadata.generation, endpoints: (.spec.endpoints | length)}}')" >/dev/null
}

@test "behind a load balancer programmer, a drain ends when it serves the pool without the instance" {
  local spec=',"ports":[{"name":"http","container":8080,"expose":{"via":"lb"}}],"update":{"strategy":"rolling","maxSurge":1,"maxUnavailable":0}'
  deploy_complete drc 1 "$spec"
  until_eq 1 bash -c "curl -s '$U/v1/endpoints/drc-http' | jq '.spec.endpoints | length'"
  serve_ep drc-http
  deploy drc 1 "$spec"',"env":{"V":"2"}' >/dev/null
  until_eq 2 assignments_n drc
  ready_all drc
  until_eq 1 draining_of drc
  # past the 2 s window, but the programmer has not served the pool without it
  sleep 3
  [ "$(draining_of drc)" = 1 ]
  serve_ep drc-http
  until_eq 0 draining_of drc
  until_eq "complete " rollout_of drc
  [ "$(assignments_n drc)" = 1 ]
}
