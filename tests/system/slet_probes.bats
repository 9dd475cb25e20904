#!/usr/bin/env bats
# slet_probes.bats: startup, readiness and liveness probes run by `slet agent`
# for real Cells (docs/slet.md, "Probes"): a real sctld and a real agent on
# loopback, Deployments of examples/hello/hello.c PUT through the objects API,
# each instance a Linux Cell with --cell-net none (so every http and tcp probe
# goes through the Cell's own network namespace, and an exec probe joins it).
#
# hello's /healthz answers 503 while it is unhealthy: HELLO_UNHEALTHY=1 starts
# it so, GET /fail and /recover (sent here from inside the Cell's network
# namespace with nsenter) switch it, HELLO_HEALTHY_AFTER=SEC is a slow start;
# `hello check` is the exec probe's client (GET /healthz on the Cell's loopback).
#
#   no probes -> ready once running, as before probes existed
#   readiness http failing -> not ready, reason "readiness probe failed: HTTP 503";
#     passing -> ready; failing again -> not ready; never restarted
#   readiness with a 10 s period -> ready within 2 s all the same (before its first
#     success a failed attempt is retried after 25 ms, doubling)
#   liveness http failing -> the Cell restarted (restarts 1, a new pid), a status
#     with reason "liveness probe failed: HTTP 503" written, ready again after
#   startup probe -> not ready ("startup probe has not passed yet") for the slow
#     start, then ready; never restarted; a startup probe that never passes
#     restarts the Cell
#   tcp -> a listening port is ready, a closed one not ("connection refused")
#   exec -> `hello check` in the Cell: ready, then not ready with its exit code
#     and output when /healthz fails
# Root only (Cells need namespaces and cgroups).  Every daemon is ended by its PID.
#
# Run: meson test -C BUILD slet_probes --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SLET=BUILD/src/slet/slet \
#   SC_FREEPORT=BUILD/tests/system/freeport SC_SRCDIR=. bats tests/system/slet_probes.bats

load sctld_lib # wait_for, wait_gone, hello_image

setup_file() {
  : "${SCTLD:?}" "${SLET:?}" "${SC_FREEPORT:?}" "${SC_SRCDIR:?}"
  [ "$(id -u)" -eq 0 ] || skip "Cells need root"
  command -v nsenter >/dev/null || skip "needs nsenter"
  export F=$BATS_FILE_TMPDIR
  IMG=$(hello_image "$F")
  export IMG
  export PORT_API=$("$SC_FREEPORT") PORT_LOGS=$("$SC_FREEPORT")
  export API=http://127.0.0.1:$PORT_API LOGS=http://127.0.0.1:$PORT_LOGS
  "$SCTLD" --data-dir "$F/sc" --listen "127.0.0.1:$PORT_API" >"$F/sctld.log" 2>&1 3>&- &
  echo $! >"$F/sctld.pid"
  wait_for 30 curl -sf "$API/healthz"
  "$SLET" agent --server "$API" --name n1 --data-dir "$F/data" --store "$F/store" \
    --trust "$F/trust" --listen "127.0.0.1:$PORT_LOGS" --cgroup-parent "slet-probes-$$" \
    --grace 2 --log-level debug >>"$F/slet.log" 2>&1 3>&- &
  echo $! >"$F/slet.pid"
  wait_for 30 curl -sf "$LOGS/healthz"
}

teardown_file() {
  local p
  for p in slet sctld; do
    [ -f "$F/$p.pid" ] || continue
    kill "$(cat "$F/$p.pid")" 2>/dev/null || true
    wait_gone "$(cat "$F/$p.pid")"
  done
}

teardown() {
  [ -n "${DEP:-}" ] && curl -s -X DELETE "$API/v1/deployments/$DEP" >/dev/null
  [ -n "${DEP:-}" ] && wait_for 30 no_instances "$DEP"
  return 0
}

# deploy NAME ENV_JSON HEALTH_JSON: one replica of hello with that env and health.
deploy() {
  DEP=$1
  curl -sf -X PUT "$API/v1/deployments/$1" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"$1\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":1,\"env\":$2,\"health\":$3,
    \"resources\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"ports\":[{\"name\":\"http\",\"container\":8080}]}}" >/dev/null
}

# The one Instance object of deployment $1 (JSON), or nothing.
inst() { curl -sf "$API/v1/instances?selector=deployment%3D$1" | jq -c '.items[0] // empty'; }
st() { inst "$1" | jq -r ".status.$2"; } # st DEP FIELD
no_instances() { [ -z "$(inst "$1")" ]; }
# is DEP JQ-EXPR: the instance's status satisfies the expression.
is() { inst "$1" | jq -e ".status | $2" >/dev/null; }
# The pid of the Cell's init on the node, from the agent's /instances.
cell_pid() {
  local name
  name=$(inst "$1" | jq -r .metadata.name)
  curl -sf "$LOGS/instances" | jq -r ".[] | select(.name == \"$name\") | .pid"
}
# hit DEP PATH: GET http://127.0.0.1:8080PATH inside the Cell's network namespace.
hit() { nsenter -t "$(cell_pid "$1")" -n curl -sf "http://127.0.0.1:8080$2"; }
show() { inst "$1" | jq -c .status >&2; tail -5 "$F/slet.log" >&2; }

@test "no probes: ready as soon as running" {
  deploy plain '{}' '{}'
  wait_for 30 is plain '.phase == "running"' || { show plain; false; }
  is plain '.ready == true and (.reason == null)' || { show plain; false; }
}

@test "readiness http: 503 is not ready with the reason, 200 is ready, never restarted" {
  deploy rd '{"HELLO_UNHEALTHY":"1"}' \
    '{"readiness":{"http":"/healthz","port":"http","period":"200ms","failureThreshold":2}}'
  wait_for 30 is rd '.phase == "running"' || { show rd; false; }
  wait_for 10 is rd '.reason == "readiness probe failed: HTTP 503"' || { show rd; false; }
  is rd '.ready == false' || { show rd; false; }
  sleep 1 # several more failing periods: still not ready, still the same Cell
  is rd '.ready == false and .phase == "running" and .restarts == 0' || { show rd; false; }
  hit rd /recover
  wait_for 10 is rd '.ready == true' || { show rd; false; }
  is rd '.reason == null' || { show rd; false; }
  hit rd /fail
  wait_for 10 is rd '.ready == false and .reason == "readiness probe failed: HTTP 503"' ||
    { show rd; false; }
  is rd '.restarts == 0 and .phase == "running"' || { show rd; false; }
}

@test "readiness with a 10 s period: ready within 2 s of the start (quick first retries)" {
  deploy rq '{}' '{"readiness":{"http":"/healthz","port":"http","period":"10s"}}'
  wait_for 30 is rq '.phase == "running"' || { show rq; false; }
  wait_for 2 is rq '.ready == true' || { show rq; false; }
}

@test "liveness http: failing restarts the Cell, counted, with the reason" {
  deploy lv '{}' '{"liveness":{"http":"/healthz","port":"http","period":"200ms","failureThreshold":2}}'
  wait_for 30 is lv '.phase == "running" and .ready == true' || { show lv; false; }
  local rev pid1 pid2
  rev=$(curl -sf "$API/v1/instances" | jq -r .revision)
  pid1=$(cell_pid lv)
  sleep 1
  is lv '.restarts == 0' || { show lv; false; } # a healthy Cell is left alone
  hit lv /fail
  wait_for 15 is lv '.restarts == 1 and .phase == "running" and .ready == true' || { show lv; false; }
  pid2=$(cell_pid lv)
  [ -n "$pid2" ] && [ "$pid1" != "$pid2" ]
  ! kill -0 "$pid1" 2>/dev/null
  # the status written when it was stopped says why
  curl -sN --max-time 2 "$API/v1/instances?watch=1&rev=$((rev + 1))" >"$F/lv.watch" || true
  grep -q '"reason":"liveness probe failed: HTTP 503"' "$F/lv.watch" || { cat "$F/lv.watch" >&2; false; }
  # the new Cell is healthy again: no second restart
  sleep 1
  is lv '.restarts == 1' || { show lv; false; }
}

@test "startup probe: gates readiness through a slow start, then ready" {
  deploy su '{"HELLO_HEALTHY_AFTER":"3"}' \
    '{"startup":{"http":"/healthz","port":"http","period":"200ms","failureThreshold":50},
      "readiness":{"tcp":8080,"period":"200ms"}}'
  wait_for 30 is su '.phase == "running"' || { show su; false; }
  local t0=$SECONDS
  is su '.ready == false and .reason == "startup probe has not passed yet"' || { show su; false; }
  wait_for 15 is su '.ready == true' || { show su; false; }
  [ $((SECONDS - t0)) -ge 2 ] || { echo "ready after $((SECONDS - t0)) s" >&2; false; }
  is su '.restarts == 0 and .reason == null' || { show su; false; }
}

@test "startup probe that never passes restarts the Cell" {
  deploy sf '{"HELLO_UNHEALTHY":"1"}' \
    '{"startup":{"http":"/healthz","port":"http","period":"200ms","failureThreshold":3}}'
  wait_for 30 is sf '.restarts >= 1' || { show sf; false; }
  is sf '.ready == false' || { show sf; false; }
  grep -q 'reason="startup probe failed: HTTP 503"' "$F/slet.log"
}

@test "tcp probe: an open port is ready, a closed one is not" {
  deploy tcpok '{}' '{"readiness":{"tcp":8080,"period":"200ms"}}'
  wait_for 30 is tcpok '.phase == "running" and .ready == true' || { show tcpok; false; }
  curl -s -X DELETE "$API/v1/deployments/tcpok" >/dev/null
  wait_for 30 no_instances tcpok
  deploy tcpno '{}' '{"readiness":{"tcp":8081,"period":"200ms","failureThreshold":1}}'
  wait_for 30 is tcpno '.phase == "running"' || { show tcpno; false; }
  wait_for 10 is tcpno '.reason == "readiness probe failed: tcp connect to port 8081: Connection refused"' ||
    { show tcpno; false; }
  is tcpno '.ready == false' || { show tcpno; false; }
}

@test "exec probe: a command inside the Cell decides readiness" {
  # Run as the Cell runs: its Landlock grants allow listening on 8080, not
  # connecting to it, so `hello check` is refused until the grant is given.
  deploy exng '{}' '{"readiness":{"exec":["/hello","check"],"period":"300ms","failureThreshold":1}}'
  wait_for 30 is exng '.phase == "running"' || { show exng; false; }
  wait_for 10 is exng '.reason == "readiness probe failed: exec /hello: exit code 1: check: connect 127.0.0.1:8080: Permission denied"' ||
    { show exng; false; }
  is exng '.ready == false' || { show exng; false; }
  curl -s -X DELETE "$API/v1/deployments/exng" >/dev/null
  wait_for 30 no_instances exng
  DEP=ex
  curl -sf -X PUT "$API/v1/deployments/ex" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"ex\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":1,\"capabilities\":[\"net.connect:8080\"],
    \"health\":{\"readiness\":{\"exec\":[\"/hello\",\"check\"],\"period\":\"300ms\",\"failureThreshold\":1}},
    \"resources\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"ports\":[{\"name\":\"http\",\"container\":8080}]}}" >/dev/null
  wait_for 30 is ex '.phase == "running" and .ready == true' || { show ex; false; }
  hit ex /fail
  wait_for 10 is ex '.ready == false' || { show ex; false; }
  is ex '.reason == "readiness probe failed: exec /hello: exit code 1: check: HTTP/1.1 503 Service Unavailable"' ||
    { show ex; false; }
  hit ex /recover
  wait_for 10 is ex '.ready == true' || { show ex; false; }
}
