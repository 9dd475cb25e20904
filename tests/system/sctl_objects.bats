#!/usr/bin/env bats
# sctl_objects.bats: sctl's object verbs (apply, get, describe, scale, delete)
# against a real sctld, its scheduler loop and a real `slet agent --simulate 2`
# (two simulated nodes in one process, the `sim` Cell backend): apply creates,
# re-applying is `unchanged`, a change is `configured`; --wait follows until the
# instances are ready and times out with the scheduler's reason; an invalid
# manifest exits 2 with file:line:col and stores nothing; `get -o yaml` prints
# what `apply -f` reads back (and its metadata.revision makes that apply a
# compare-and-swap); describe shows related objects; scale and delete.
#
# Run: meson test -C BUILD sctl_objects --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SCTL=BUILD/src/sctl/sctl SLET=BUILD/src/slet/slet \
#   SC_FREEPORT=BUILD/tests/system/freeport bats tests/system/sctl_objects.bats

load sctld_lib

M="$BATS_TEST_DIRNAME/manifests"

setup_file() {
  : "${SCTLD:?SCTLD must name the sctld binary}"
  : "${SCTL:?SCTL must name the sctl binary}"
  : "${SLET:?SLET must name the slet binary}"
  start_sctld "$BATS_FILE_TMPDIR/main"
  export PORT SCTLD_PID
  export SCTL_SERVER="http://127.0.0.1:$PORT"
  "$SLET" agent --server "$SCTL_SERVER" --name sim --data-dir "$BATS_FILE_TMPDIR/slet" \
    --simulate 2 --labels zone=eu --memory 1Gi >"$BATS_FILE_TMPDIR/slet.log" 2>&1 3>&- &
  SLET_PID=$!
  export SLET_PID
  for _ in $(seq 1 200); do
    [ "$("$SCTL" get nodes -o name 2>/dev/null | wc -l)" -eq 2 ] && return 0
    sleep 0.05
  done
  echo "the simulated nodes did not register; slet log:" >&2
  tail -20 "$BATS_FILE_TMPDIR/slet.log" >&2
  return 1
}

teardown_file() {
  if [ -n "${SLET_PID:-}" ]; then
    kill -TERM "$SLET_PID" 2>/dev/null || true
    wait "$SLET_PID" 2>/dev/null || true
  fi
  [ -n "${SCTLD_PID:-}" ] && stop_sctld "$SCTLD_PID"
}

setup() {
  export SCTL_SERVER="http://127.0.0.1:$PORT"
  export SCTL_CONFIG=/nonexistent-is-not-used-while-SCTL_SERVER-is-set
}

# Waits until `sctl get instances -l deployment=$1` lists $2 instances.
wait_instances() {
  for _ in $(seq 1 200); do
    [ "$("$SCTL" get instances -l "deployment=$1" -o name 2>/dev/null | wc -l)" -eq "$2" ] &&
      return 0
    sleep 0.05
  done
  "$SCTL" get instances -l "deployment=$1" >&2
  return 1
}

@test "apply creates, applying again is unchanged, a change is configured" {
  run "$SCTL" apply -f "$M/web.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web created" ]
  run "$SCTL" apply -f "$M/web.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web unchanged" ]
  run "$SCTL" apply -f "$M/web-v2.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web configured" ]
  [ "$("$SCTL" get deployment web -o json | jq .metadata.generation)" = 2 ]
  # the server kept what apply sent: the canonical object of the manifest
  [ "$("$SCTL" get deploy web -o json | jq -r '.spec.env.GREETING, .spec.resources.cpuMillis')" = \
    "$(printf 'bonjour\n100')" ]
}

@test "apply --wait follows until every instance of the new generation is ready" {
  run "$SCTL" apply -f "$M/web.yaml" --wait --timeout 30s
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "deployment/web configured" ]
  [[ "$output" == *"deployment/web: 2/2 ready"* ]]
  [[ "${lines[-1]}" == "ready in "*s ]]
  run "$SCTL" get instances -l deployment=web
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 3 ]
  [[ "${lines[0]}" == "NAME"*"NODE"*"PHASE"*"READY"*"RESTARTS"*"AGE" ]]
  # named after the Revision of the template (web-HASH-K), which apply --wait followed
  rev=$("$SCTL" get revisions -l deployment=web -o json |
    jq -r '.items[] | select(.spec.template.env.GREETING == "hello") | .metadata.name')
  [[ "${lines[1]}" == "$rev-"?"  "*"running"*"true"* ]]
  [[ "${lines[2]}" == "$rev-"?"  "*"running"*"true"* ]]
  # spread over both nodes (placement.spread defaults to node)
  [ "$("$SCTL" get instances -l deployment=web -o json | jq -r '[.items[].spec.node] | unique | length')" = 2 ]
}

@test "apply --wait on an unschedulable deployment: the reason, then exit 3 at the timeout" {
  run "$SCTL" apply -f "$M/nowhere.yaml" --wait --timeout 1s
  [ "$status" -eq 3 ]
  [[ "$output" == *"deployment/nowhere: unschedulable: 0/2 nodes: 2 not matching zone=mars"* ]]
  [[ "$output" == *"sctl: timed out after 1s: deployment/nowhere: 0/1 ready"* ]]
  run "$SCTL" get deploy nowhere -o wide
  [[ "${lines[1]}" == "nowhere"*"0/1"*"0/2 nodes: 2 not matching zone=mars" ]]
  run "$SCTL" delete deployment nowhere
  [ "$status" -eq 0 ] && [ "$output" = "deployment/nowhere deleted" ]
}

@test "an invalid manifest: exit 2, file:line:col, and nothing of the set stored" {
  run "$SCTL" apply -f "$M/bad.yaml"
  [ "$status" -eq 2 ]
  [ "${lines[0]}" = "$M/bad.yaml:7:11: replicas: expected a non-negative integer, got -3" ]
  [ "${lines[1]}" = "sctl: nothing was applied" ]
  run "$SCTL" get deployment fine
  [ "$status" -eq 4 ]
  run "$SCTL" get deployments -o name
  [ "$output" = "deployment/web" ]
  # stdin and a missing file
  run "$SCTL" apply -f - <<<"app: Bad_Name"$'\n'"image: web:1"
  [ "$status" -eq 2 ] && [[ "${lines[0]}" == "<stdin>:1:6: app: "* ]]
  run "$SCTL" apply -f "$M/no-such.yaml"
  [ "$status" -eq 2 ] && [[ "$output" == *"no-such.yaml"* ]]
}

@test "the bad-manifest corpus: each file exits 2 with its expected errors; the store keeps its objects" {
  # tests/manifest/bad/NAME.err holds the errors the manifest library must give
  # (test_manifest pins them); sctl must print exactly those, then refuse to send
  local corpus="$BATS_TEST_DIRNAME/../manifest" before f n=0
  before=$(curl -sf "$SCTL_SERVER/v1/deployments" | jq -c '[.items[] | [.metadata.name, .metadata.revision]]')
  cd "$corpus"
  for f in bad/*.yaml; do
    run "$SCTL" apply -f "$f"
    [ "$status" -eq 2 ] || { echo "$f: exit $status" >&2; false; }
    [ "$output" = "$(cat "${f%.yaml}.err")"$'\n'"sctl: nothing was applied" ] ||
      { echo "$f printed:" >&2; echo "$output" >&2; false; }
    n=$((n + 1))
  done
  [ "$n" -ge 20 ]
  [ "$(curl -sf "$SCTL_SERVER/v1/deployments" | jq -c '[.items[] | [.metadata.name, .metadata.revision]]')" = "$before" ]
}

@test "get: tables, wide, json, name, aliases and label selectors" {
  run "$SCTL" get deployments
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "NAME  READY  ASSIGNED  AGE" ]
  [[ "${lines[1]}" == "web   2/2    2         "* ]]
  for alias in deployment deploy Deployment; do
    [ "$("$SCTL" get "$alias" -o name)" = "deployment/web" ]
  done
  run "$SCTL" get deploy -o wide
  [[ "${lines[0]}" == *"GENERATION  IMAGE  UNSCHEDULABLE" ]]
  [[ "${lines[1]}" == *"3/3"*"web:1"*"<none>" ]]
  [ "$("$SCTL" get deploy -o json | jq -r '.kind, (.items | length)')" = "$(printf 'DeploymentList\n1')" ]
  run "$SCTL" get nodes -o wide
  [ "${lines[0]}" = "NAME   READY  CPU  MEMORY  AGE  SCHEDULABLE  ADDRESSES  LABELS" ]
  [[ "${lines[1]}" == "sim-0  true   2    1Gi"*"zone=eu" ]]
  run "$SCTL" get no sim-1
  [ "$status" -eq 0 ] && [ "${#lines[@]}" -eq 2 ]
  run "$SCTL" get rev -o wide
  [ "${lines[0]}" = "NAME            DEPLOYMENT  GENERATION  AGE  IMAGE" ]
  [ "${#lines[@]}" -eq 3 ] # the templates of web.yaml and web-v2.yaml
  [[ "${lines[1]}" == web-??????????"  web         "[123]*"web:1" ]]
  run "$SCTL" get asg -l 'deployment in (web),node=sim-0' -o name
  [ "$status" -eq 0 ] && [[ "$output" == "assignment/web-3-"* ]] && [ "${#lines[@]}" -eq 1 ]
  run "$SCTL" get inst -l 'deployment notin (web)'
  [ "$status" -eq 0 ] && [ "$output" = "No instances found." ]
  # errors: a bad selector is the server's 400, an unknown kind and name+selector are usage
  run "$SCTL" get inst -l 'deployment in (web'
  [ "$status" -eq 1 ] && [[ "$output" == *"invalid_argument"* ]]
  run "$SCTL" get widgets
  [ "$status" -eq 2 ] && [[ "$output" == *"known: deployments (deploy)"* ]]
  run "$SCTL" get deploy web -l app=web
  [ "$status" -eq 2 ]
  run "$SCTL" get deploy nosuch
  [ "$status" -eq 4 ]
}

@test "get -o yaml prints what apply reads back; its revision makes apply a compare-and-swap" {
  "$SCTL" get deployment web -o yaml >"$BATS_TEST_TMPDIR/web.yaml"
  head -4 "$BATS_TEST_TMPDIR/web.yaml" | tr '\n' '|' | grep -q '^kind: Deployment|apiVersion: v1|metadata:|  name: web|$'
  run "$SCTL" apply -f "$BATS_TEST_TMPDIR/web.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web unchanged" ]
  sed 's/^    GREETING: hello$/    GREETING: hallo/' "$BATS_TEST_TMPDIR/web.yaml" \
    >"$BATS_TEST_TMPDIR/web2.yaml"
  run cmp -s "$BATS_TEST_TMPDIR/web.yaml" "$BATS_TEST_TMPDIR/web2.yaml"
  [ "$status" -eq 1 ]
  run "$SCTL" apply -f "$BATS_TEST_TMPDIR/web2.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web configured" ]
  # the first file still names the old revision: refused, exit 1, nothing changed
  run "$SCTL" apply -f "$BATS_TEST_TMPDIR/web.yaml"
  [ "$status" -eq 1 ] && [[ "$output" == *"revision_mismatch"* ]]
  [ "$("$SCTL" get deploy web -o json | jq -r .spec.env.GREETING)" = hallo ]
  # every kind prints as YAML documents that the manifest schema accepts: applying
  # Revisions passes validation (not exit 2) and is refused by the server (exit 1)
  [ "$("$SCTL" get nodes -o yaml | grep -c '^kind: Node$')" = 2 ]
  "$SCTL" get revisions -o yaml >"$BATS_TEST_TMPDIR/revs.yaml"
  run "$SCTL" apply -f "$BATS_TEST_TMPDIR/revs.yaml"
  [ "$status" -eq 1 ] && [[ "$output" == *"use GET: revisions are written by the server"* ]]
}

@test "describe: the object, readable, with its assignments and instances" {
  "$SCTL" apply -f "$M/web.yaml" --wait --timeout 30s
  run "$SCTL" describe deployment web
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "Name:         web" ]
  [ "${lines[1]}" = "Kind:         Deployment" ]
  [ "${lines[2]}" = "Labels:       tier=front" ]
  [[ "$output" == *$'\nSpec:\n'*"  image: web:1"* ]]
  [[ "$output" == *$'\nStatus:\n'*"  ready: 2"* ]]
  [[ "$output" == *$'\nAssignments:\n  NAME'*$'\n  web-'*"  web         sim-"* ]]
  [[ "$output" == *$'\nInstances:\n  NAME'*"running"* ]]
  run "$SCTL" describe node sim-0
  [ "$status" -eq 0 ]
  [[ "$output" == *"Ready:        true (heartbeat key /registry/heartbeats/sim-0 present)"* ]]
  run "$SCTL" describe deploy nosuch
  [ "$status" -eq 4 ]
}

@test "scale: compare-and-swap on the revision read, then the instances follow" {
  run "$SCTL" scale deployment web --replicas 3
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web scaled (2 -> 3)" ]
  [ "$("$SCTL" get deploy web -o json | jq .spec.replicas)" = 3 ]
  wait_instances web 3
  run "$SCTL" scale web --replicas 1
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web scaled (3 -> 1)" ]
  wait_instances web 1
  run "$SCTL" scale deployment/web --replicas 1
  [ "$status" -eq 0 ] && [[ "$output" == *", unchanged" ]]
  run "$SCTL" scale nosuch --replicas 2
  [ "$status" -eq 4 ]
  run "$SCTL" scale web
  [ "$status" -eq 2 ]
  run "$SCTL" scale web --replicas -1
  [ "$status" -eq 2 ]
}

@test "delete by name and by manifest: everything of the deployment goes; missing is exit 4" {
  run "$SCTL" delete -f "$M/web.yaml"
  [ "$status" -eq 0 ] && [ "$output" = "deployment/web deleted" ]
  run "$SCTL" delete deployment web
  [ "$status" -eq 4 ] && [ "$output" = "sctl: deployment/web not found" ]
  wait_instances web 0
  # the scheduler collects the Assignments and Revisions of a deleted Deployment
  for k in deployments assignments revisions; do
    for _ in $(seq 1 100); do
      [ "$("$SCTL" get "$k" -o name | wc -l)" -eq 0 ] && break
      sleep 0.05
    done
    run "$SCTL" get "$k"
    [ "$status" -eq 0 ] && [ "$output" = "No $k found." ]
  done
  run "$SCTL" delete -f "$M/bad.yaml"
  [ "$status" -eq 2 ]
  run "$SCTL" delete deployment
  [ "$status" -eq 2 ]
}

@test "completion knows the object verbs and completes kinds" {
  run "$SCTL" completion bash
  [ "$status" -eq 0 ]
  complete_words() { # the words _sctl offers for the command line "$@"
    PATH="$(dirname "$SCTL"):$PATH" bash -c 'source /dev/stdin; COMP_WORDS=("$@");
      COMP_CWORD=$(($# - 1)); _sctl; echo "${COMPREPLY[*]}"' _ "$@" <<<"$output"
  }
  [ "$(complete_words sctl ge)" = "get" ]
  [ "$(complete_words sctl get dep)" = "deployments" ]
  [ "$(complete_words sctl get nodes s)" = "sim-0 sim-1" ]
  [ "$(complete_words sctl apply -f "$M/we")" = "$M/web-v2.yaml $M/web.yaml" ]
}

@test "rollout status follows to complete; history lists the revisions; undo puts one back" {
  printf 'kind: Deployment\nmetadata: {name: ro}\nspec: {image: hello, replicas: 3, env: {V: "1"}}\n' \
    >"$BATS_TEST_TMPDIR/ro1.yaml"
  sed 's/image: hello,/image: "hello:2",/; s/V: "1"/V: "2"/' "$BATS_TEST_TMPDIR/ro1.yaml" >"$BATS_TEST_TMPDIR/ro2.yaml"
  "$SCTL" apply -f "$BATS_TEST_TMPDIR/ro1.yaml" >/dev/null
  run "$SCTL" rollout status ro --timeout 30s
  [ "$status" -eq 0 ] && [[ "${lines[-1]}" == "deployment/ro: ro-"*" complete: 3/3 updated, 3 ready, 0 old, 0 draining" ]]
  r1=$("$SCTL" get deploy ro -o json | jq -r .status.rollout.revision)
  "$SCTL" apply -f "$BATS_TEST_TMPDIR/ro2.yaml" >/dev/null
  run "$SCTL" rollout status deployment/ro --timeout 30s
  [ "$status" -eq 0 ]
  r2=$("$SCTL" get deploy ro -o json | jq -r .status.rollout.revision)
  [ "$r2" != "$r1" ] && [[ "${lines[-1]}" == "deployment/ro: $r2 complete: "* ]]
  [ "$("$SCTL" get deploy ro -o json | jq -r .status.rollout.from)" = "$r1" ]
  run "$SCTL" rollout history ro
  [ "$status" -eq 0 ] && [ "${#lines[@]}" = 3 ]
  [[ "${lines[1]}" == "$r1 "*" 1 "*"hello "* ]] && [[ "${lines[2]}" == "$r2 "*" 2 "*"hello:2"*"*" ]]
  # undo: the revision it came from, with today's replicas; then followed again
  "$SCTL" scale ro --replicas 2 >/dev/null
  run "$SCTL" rollout undo ro
  [ "$status" -eq 0 ] && [ "$output" = "deployment/ro rolled back to $r1" ]
  run "$SCTL" rollout status ro --timeout 30s
  [ "$status" -eq 0 ] && [[ "${lines[-1]}" == "deployment/ro: $r1 complete: 2/2 updated, 2 ready, 0 old, 0 draining" ]]
  [ "$("$SCTL" get deploy ro -o json | jq -c .spec.env)" = '{"V":"1"}' ]
  run "$SCTL" rollout undo ro --to-revision nosuch
  [ "$status" -eq 4 ] && [[ "$output" == *"no such revision"* ]]
  run "$SCTL" rollout undo ro --to-revision 2
  [ "$status" -eq 0 ] && [ "$output" = "deployment/ro rolled back to $r2" ]
  run "$SCTL" rollout status nosuch
  [ "$status" -eq 4 ]
  run "$SCTL" rollout pause ro
  [ "$status" -eq 1 ] && [[ "$output" == *"no rollout in progress (phase complete)"* ]]
  "$SCTL" delete deployment ro >/dev/null
}

@test "rollout promote, pause and resume drive a canary's steps" {
  printf 'kind: Deployment\nmetadata: {name: cy}\nspec: {image: hello, replicas: 3, env: {V: "1"},
  update: {strategy: canary, steps: [{weight: 33}, {weight: 66}]}}\n' >"$BATS_TEST_TMPDIR/cy1.yaml"
  sed 's/V: "1"/V: "2"/' "$BATS_TEST_TMPDIR/cy1.yaml" >"$BATS_TEST_TMPDIR/cy2.yaml"
  "$SCTL" apply -f "$BATS_TEST_TMPDIR/cy1.yaml" >/dev/null
  "$SCTL" rollout status cy --timeout 30s >/dev/null
  "$SCTL" apply -f "$BATS_TEST_TMPDIR/cy2.yaml" >/dev/null
  # step 1: one of three (33 %) beside the old three, paused until promoted
  run "$SCTL" rollout status cy --timeout 30s
  [ "$status" -eq 0 ]
  [[ "${lines[-1]}" == *" paused: 1/3 updated, 1 ready, 3 old, 0 draining, canary step 1/2 at 33%" ]]
  run "$SCTL" rollout promote cy
  [ "$status" -eq 0 ] && [ "$output" = "deployment/cy promoted" ]
  for _ in $(seq 1 50); do
    [ "$("$SCTL" get deploy cy -o json | jq -r '"\(.status.rollout.phase) \(.status.rollout.step)"')" = "paused 1" ] && break
    sleep 0.2
  done
  run "$SCTL" rollout status cy --no-follow
  [[ "${lines[-1]}" == *" paused: 2/3 updated, 2 ready, 3 old, 0 draining, canary step 2/2 at 66%" ]]
  # paused by the user: a promote waits for the resume
  run "$SCTL" rollout pause cy
  [ "$status" -eq 0 ] && [ "$output" = "deployment/cy paused" ]
  "$SCTL" rollout promote cy >/dev/null
  sleep 1.5
  run "$SCTL" rollout status cy --no-follow
  [[ "${lines[-1]}" == *" paused: 2/3 updated, 2 ready, 3 old, 0 draining, canary step 2/2 at 66% (paused by the user: sctl rollout resume)" ]]
  run "$SCTL" rollout resume cy
  [ "$status" -eq 0 ] && [ "$output" = "deployment/cy resumed" ]
  run "$SCTL" rollout status cy --timeout 30s
  [ "$status" -eq 0 ] && [[ "${lines[-1]}" == *" complete: 3/3 updated, 3 ready, 0 old, 0 draining" ]]
  run "$SCTL" rollout promote cy --fully
  [ "$status" -eq 2 ]
  "$SCTL" delete deployment cy >/dev/null
}

@test "nodes cordon keeps what runs; drain moves it off and waits; uncordon" {
  printf 'kind: Deployment\nmetadata: {name: dr}\nspec: {image: hello, replicas: 4, resources: {memory: 16Mi}}\n' \
    >"$BATS_TEST_TMPDIR/dr.yaml"
  "$SCTL" apply -f "$BATS_TEST_TMPDIR/dr.yaml" --wait >/dev/null
  on() { "$SCTL" get assignments -l deployment=dr -o json | jq -r "[.items[] | select(.spec.node == \"$1\")] | length"; }
  [ "$(on sim-0)" = 2 ] && [ "$(on sim-1)" = 2 ]
  run "$SCTL" nodes cordon sim-1
  [ "$status" -eq 0 ] && [ "$output" = "node/sim-1 cordoned" ]
  [ "$("$SCTL" get nodes sim-1 -o wide | awk 'NR == 2 {print $6}')" = false ]
  # cordoned: what runs there stays, a scale-up goes to sim-0
  "$SCTL" scale dr --replicas 5 >/dev/null
  for _ in $(seq 50); do [ "$(on sim-0)" = 3 ] && break; sleep 0.1; done
  [ "$(on sim-0)" = 3 ] && [ "$(on sim-1)" = 2 ]
  # drain: replaced on sim-0, then gone from sim-1; the command waits for it
  run "$SCTL" nodes drain sim-1 --timeout 30s
  [ "$status" -eq 0 ] && [ "${lines[-1]}" = "node/sim-1 drained" ]
  [ "$(on sim-1)" = 0 ] && [ "$(on sim-0)" = 5 ]
  run "$SCTL" rollout status dr --timeout 30s
  [ "$status" -eq 0 ] && [[ "${lines[-1]}" == *"5/5 updated, 5 ready, 0 old, 0 draining" ]]
  run "$SCTL" nodes uncordon sim-1
  [ "$status" -eq 0 ] && [ "$output" = "node/sim-1 uncordoned" ]
  [ "$("$SCTL" get nodes sim-1 -o json | jq -c '.spec | [.unschedulable, .drain]')" = '[null,null]' ]
  run "$SCTL" nodes drain nosuch --timeout 1s
  [ "$status" -eq 4 ]
  run "$SCTL" nodes frobnicate sim-1
  [ "$status" -eq 2 ]
  "$SCTL" delete deployment dr >/dev/null
}
