#!/usr/bin/env bats
# sctl_logs.bats: `sctl logs INSTANCE [-f]` end to end (docs/sctl.md; the relay is
# GET /v1/instances/NAME/logs in docs/api.md, "Logs"): a real sctld, a real
# `slet agent` running a Deployment of examples/hello/hello.c as a Linux Cell from
# a signed image (built as in slet_agent.bats), and sctl reading the instance's
# output through sctld, never from the node directly.
#
#   what hello printed at start comes back, byte for byte what slet serves, also
#     through a second member (a learner: a follower reads its own store)
#   -f shows output that arrives after it started (hello is sent SIGTERM: it
#     prints "stopping", slet restarts it, it prints "listening" again); SIGTERM
#     ends the follow with 0, and so does a reader that goes away (| head -1)
#   a follower killed mid-stream: sctld frees the relay at once (sc_logs_streams
#     back to 0), stays healthy, and a second follow works
#   unknown instance -> exit 4; a node without a logs endpoint, or one nobody
#     answers at -> exit 3 naming the node and URL; usage errors -> exit 2
#   slet killed -> a follow in progress exits 3 ("broke"), a new `sctl logs` exits
#     3 naming the node and URL at once (no hang); slet back -> logs again
#
# The error cases run as any user; the ones that need a Cell need root and skip
# otherwise.  Every process started here is ended by its PID.
#
# Run: meson test -C BUILD sctl_logs --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SCTL=BUILD/src/sctl/sctl SLET=BUILD/src/slet/slet \
#   SC_FREEPORT=BUILD/tests/system/freeport SC_SRCDIR=. bats tests/system/sctl_logs.bats

load sctld_lib # wait_for, wait_gone, hello_image

setup_file() {
  : "${SCTLD:?}" "${SCTL:?}" "${SLET:?}" "${SC_FREEPORT:?}" "${SC_SRCDIR:?}"
  export F=$BATS_FILE_TMPDIR
  export PORT_API=$("$SC_FREEPORT") PORT_PEER=$("$SC_FREEPORT") PORT_LOGS=$("$SC_FREEPORT")
  export API=http://127.0.0.1:$PORT_API LOGS=http://127.0.0.1:$PORT_LOGS NODE=n1
  "$SCTLD" --name c1 --data-dir "$F/c1" --listen "127.0.0.1:$PORT_API" \
    --peer-listen "127.0.0.1:$PORT_PEER" --initial-cluster "c1=127.0.0.1:$PORT_PEER" \
    >"$F/c1.log" 2>&1 3>&- &
  echo $! >"$F/c1.pid"
  wait_for 30 curl -sf "$API/healthz"
  export ROOT=
  [ "$(id -u)" -eq 0 ] || return 0
  ROOT=1
  IMG=$(hello_image "$F")
  start_slet
  curl -sf -X PUT "$API/v1/deployments/lw" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"lw\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":1,
    \"resources\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"ports\":[{\"name\":\"http\",\"container\":8080}]}}" >/dev/null
  wait_for 30 bash -c "curl -sf $API/v1/instances | jq -e '[.items[] | select(.status.phase == \"running\")] | length == 1'" || {
    tail -20 "$F/slet.log" >&2
    return 1
  }
  INST=$(curl -sf "$API/v1/instances" | jq -r '.items[0].metadata.name')
  export INST
}

teardown_file() {
  local p
  for p in c2 slet c1; do
    [ -f "$F/$p.pid" ] || continue
    kill "$(cat "$F/$p.pid")" 2>/dev/null || true
    wait_gone "$(cat "$F/$p.pid")"
  done
}

setup() {
  export SCTL_SERVER=$API SCTL_CONFIG=/nonexistent-is-not-used-while-SCTL_SERVER-is-set
}

needs_cells() { [ -n "$ROOT" ] || skip "Cells need root"; }

start_slet() {
  "$SLET" agent --server "$API" --name "$NODE" --data-dir "$F/data" --store "$F/store" \
    --trust "$F/trust" --listen "127.0.0.1:$PORT_LOGS" --cgroup-parent "sctl-logs-$$" --grace 2 \
    >>"$F/slet.log" 2>&1 3>&- &
  echo $! >"$F/slet.pid"
  wait_for 10 curl -sf "$LOGS/healthz"
}

metric() { curl -s "$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }

# The /hello process of instance $1 (by its environment: SC_INSTANCE is set by slet).
hello_pid() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = hello ] || continue
    tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "SC_INSTANCE=$1" && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}

# count PATTERN FILE: lines of FILE matching PATTERN (0 when none).
count() { grep -c -- "$1" "$2" || true; }

@test "sctl logs: what the instance printed, as slet serves it, also through another member" {
  needs_cells
  wait_for 10 bash -c "$SCTL logs $INST | grep -qx 'hello: $INST listening on port 8080'"
  run "$SCTL" logs "$INST"
  [ "$status" -eq 0 ]
  [[ "$output" == *"hello: $INST listening on port 8080"* ]]
  # the relay changes nothing: the same bytes as the node's own endpoint
  curl -sf "$LOGS/logs/$INST" >"$F/direct"
  "$SCTL" logs "instance/$INST" >"$F/relayed"
  cmp "$F/direct" "$F/relayed"
  # a second member, added as a learner: it answers from its own store
  local p2 pp2
  p2=$("$SC_FREEPORT") pp2=$("$SC_FREEPORT")
  "$SCTLD" --name c2 --data-dir "$F/c2" --listen "127.0.0.1:$p2" --peer-listen "127.0.0.1:$pp2" \
    --join --initial-cluster "c1=127.0.0.1:$PORT_PEER,c2=127.0.0.1:$pp2" >"$F/c2.log" 2>&1 3>&- &
  echo $! >"$F/c2.pid"
  wait_for 30 curl -sf "http://127.0.0.1:$p2/healthz"
  curl -sf -X POST -d "{\"name\":\"c2\",\"peer\":\"127.0.0.1:$pp2\",\"learner\":true}" \
    "$API/v1/cluster/members" >/dev/null
  wait_for 30 curl -sf "http://127.0.0.1:$p2/v1/instances/$INST?serializable=1"
  run "$SCTL" --server "http://127.0.0.1:$p2" logs "$INST"
  [ "$status" -eq 0 ]
  [[ "$output" == *"hello: $INST listening on port 8080"* ]]
  [ "$(metric "http://127.0.0.1:$p2" sc_logs_streams_total)" -ge 1 ]
  curl -sf -X DELETE "$API/v1/cluster/members/c2" >/dev/null
  kill "$(cat "$F/c2.pid")"
  wait_gone "$(cat "$F/c2.pid")"
  rm "$F/c2.pid"
}

@test "sctl logs -f: output that arrives after it started; SIGTERM and a gone reader end it with 0" {
  needs_cells
  local base_stop base_listen fpid hpid rc=0
  "$SCTL" logs "$INST" >"$F/before"
  base_stop=$(count "stopping after" "$F/before")
  base_listen=$(count "listening on port" "$F/before")
  "$SCTL" logs -f "$INST" >"$F/follow.out" 2>"$F/follow.err" 3>&- &
  fpid=$!
  bash -c "'$SCTL' logs -f '$INST' | head -1 >'$F/head.out'; echo \${PIPESTATUS[0]} >'$F/head.rc'" 3>&- &
  echo $! >"$F/head.pid"
  wait_for 10 bash -c "[ \$(grep -c 'listening on port' '$F/follow.out') -ge $base_listen ]"
  [ "$(count "stopping after" "$F/follow.out")" -eq "$base_stop" ]
  hpid=$(hello_pid "$INST")
  kill -TERM "$hpid" # hello says "stopping", exits 0, and slet starts it again
  wait_for 10 bash -c "[ \$(grep -c 'stopping after' '$F/follow.out') -gt $base_stop ]" ||
    { cat "$F/follow.out" "$F/follow.err"; false; }
  wait_for 10 bash -c "[ \$(grep -c 'listening on port' '$F/follow.out') -gt $base_listen ]"
  kill -0 "$fpid" # still following
  kill -TERM "$fpid"
  wait "$fpid" || rc=$?
  [ "$rc" -eq 0 ]
  [ ! -s "$F/follow.err" ]
  # the reader of the other follow went away after one line: sctl saw EPIPE and ended
  wait_for 10 test -s "$F/head.rc"
  [ "$(cat "$F/head.rc")" -eq 0 ]
  [[ "$(cat "$F/head.out")" == hello:* ]]
  wait_gone "$(cat "$F/head.pid")"
}

@test "a follow whose client is killed: the relay is freed, sctld healthy, a second follow works" {
  needs_cells
  local fpid rc=0
  "$SCTL" logs -f "$INST" >"$F/f1.out" 2>&1 3>&- &
  fpid=$!
  wait_for 10 grep -q "listening on port" "$F/f1.out"
  [ "$(metric "$API" sc_logs_streams)" -eq 1 ]
  kill -9 "$fpid"
  wait "$fpid" 2>/dev/null || true
  wait_for 5 bash -c "[ \"\$(curl -s $API/metrics | awk '\$1 == \"sc_logs_streams\" {print \$2}')\" = 0 ]"
  run curl -sf "$API/healthz"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .status)" = ok ]
  "$SCTL" logs -f "$INST" >"$F/f2.out" 2>&1 3>&- &
  fpid=$!
  wait_for 10 grep -q "hello: $INST listening on port 8080" "$F/f2.out"
  kill -TERM "$fpid"
  wait "$fpid" || rc=$?
  [ "$rc" -eq 0 ]
  wait_for 5 bash -c "[ \"\$(curl -s $API/metrics | awk '\$1 == \"sc_logs_streams\" {print \$2}')\" = 0 ]"
}

@test "an unknown instance: exit 4 with a clear message" {
  run "$SCTL" logs nosuch
  [ "$status" -eq 4 ]
  [[ "$output" == *"instance nosuch does not exist"* ]]
  run "$SCTL" logs -f nosuch
  [ "$status" -eq 4 ]
  run curl -s -w '\n%{http_code}' "$API/v1/instances/nosuch/logs"
  [ "${lines[1]}" = 404 ]
  [ "$(echo "${lines[0]}" | jq -r .error.code)" = not_found ]
}

@test "a node without a logs endpoint, or one nobody answers at: exit 3 naming node and URL" {
  local dead
  curl -sf -X PUT "$API/v1/nodes/ghost" -d '{"kind":"Node","metadata":{"name":"ghost"},
    "spec":{"addresses":["127.0.0.1"],"capacity":{"cpuMillis":1000,"memoryBytes":1073741824}}}' >/dev/null
  curl -sf -X PUT "$API/v1/instances/ghost-0" -d '{"kind":"Instance","metadata":{"name":"ghost-0"},
    "spec":{"assignment":"ghost-0","node":"ghost","revision":"ghost-1"}}' >/dev/null
  run "$SCTL" logs ghost-0
  [ "$status" -eq 3 ]
  [[ "$output" == *"node ghost has no logs endpoint"* ]]
  dead=http://127.0.0.1:$("$SC_FREEPORT") # nobody listens there
  curl -sf -X PUT "$API/v1/nodes/ghost/status" -d "{\"status\":{\"logs\":\"$dead\"}}" >/dev/null
  run timeout 15 "$SCTL" logs -f ghost-0
  [ "$status" -eq 3 ]
  [[ "$output" == *"node ghost's logs endpoint $dead"* ]]
  [[ "$output" == *"502 bad_gateway"* ]]
  curl -sf -X DELETE "$API/v1/instances/ghost-0" >/dev/null
  curl -sf -X DELETE "$API/v1/nodes/ghost" >/dev/null
}

@test "usage: one instance, of kind instance; completion knows the verb" {
  run "$SCTL" logs
  [ "$status" -eq 2 ]
  run "$SCTL" logs a b
  [ "$status" -eq 2 ]
  run "$SCTL" logs deploy/web
  [ "$status" -eq 2 ]
  [[ "$output" == *"deployments are not instances"* ]]
  run "$SCTL" logs -x a
  [ "$status" -eq 2 ]
  run "$SCTL" logs --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"usage: sctl logs INSTANCE [-f|--follow]"* ]]
  run "$SCTL" completion bash
  [[ "$output" == *" logs "* ]] && [[ "$output" == *"logs) "* ]]
}

@test "slet killed: a follow ends with 3, a new sctl logs fails at once naming the node; back again" {
  needs_cells
  local fpid rc=0
  "$SCTL" logs -f "$INST" >"$F/k.out" 2>"$F/k.err" 3>&- &
  fpid=$!
  wait_for 10 grep -q "listening on port" "$F/k.out"
  kill -9 "$(cat "$F/slet.pid")"
  wait_gone "$(cat "$F/slet.pid")"
  wait_for 10 bash -c "! kill -0 $fpid" || { kill "$fpid"; false; }
  wait "$fpid" || rc=$?
  [ "$rc" -eq 3 ]
  grep -q "the log stream of $INST broke" "$F/k.err"
  run timeout 15 "$SCTL" logs "$INST"
  [ "$status" -eq 3 ]
  [[ "$output" == *"node $NODE's logs endpoint $LOGS"* ]]
  start_slet
  wait_for 30 bash -c "$SCTL logs $INST | grep -q 'listening on port 8080'"
}

@test "sctld stopped with a follow open: the follow ends with 0; no sanitizer report in its log" {
  local fpid rc=0 pid
  if [ -n "$ROOT" ]; then
    "$SCTL" logs -f "$INST" >"$F/s.out" 2>"$F/s.err" 3>&- &
    fpid=$!
    wait_for 10 grep -q "listening on port" "$F/s.out"
  fi
  pid=$(cat "$F/c1.pid")
  kill -TERM "$pid"
  wait_gone "$pid"
  if [ -n "$ROOT" ]; then
    wait "$fpid" || rc=$?
    [ "$rc" -eq 0 ]
  fi
  ! grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$F/c1.log"
  grep -q 'msg="stopped"' "$F/c1.log"
}
