#!/usr/bin/env bats
# slet_agent.bats: the node agent end to end (docs/slet.md): a real sctld and a
# real `slet agent` on loopback, a Deployment applied through the objects API,
# its instances run as Linux Cells from a signed image.
#
# The image is examples/hello/hello.c linked statically (`cc -static`), packed
# with `slet image pack`, signed with a key made here and imported into a store
# in the test's directory.  The tests run in order and share the two daemons:
#   apply 4 -> 4 Instances running, 4 Cells (cgroups) each with one /hello, logs
#   an instance's process killed -> restarted, restarts counted
#   scale to 2 -> 2 Cells, nothing else left (cgroups, state files, image leases)
#   env changed -> the instances are replaced and the new ones see the env
#   slet killed (-9) and started again -> the same instances, one Cell each,
#     no cgroup or process of the old run, restarts counted
#   a Deployment deleted while slet is down -> cleaned when it comes back
#   delete -> nothing left
# Cells are found through their cgroups under the agent's --cgroup-parent (one
# of its own per run), so other Cells on the machine never count.  Root only
# (Cells need namespaces and cgroups).  Every daemon is ended by its PID.
#
# Run: meson test -C BUILD slet_agent --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SLET=BUILD/src/slet/slet \
#   SC_FREEPORT=BUILD/tests/system/freeport SC_SRCDIR=. bats tests/system/slet_agent.bats

setup_file() {
  : "${SCTLD:?}" "${SLET:?}" "${SC_FREEPORT:?}" "${SC_SRCDIR:?}"
  [ "$(id -u)" -eq 0 ] || skip "Cells need root"
  export F=$BATS_FILE_TMPDIR
  mkdir -p "$F/root"/{proc,dev,tmp,run} "$F/trust"
  cc -O2 -static -o "$F/root/hello" "$SC_SRCDIR/examples/hello/hello.c"
  "$SLET" image keygen "$F/key.pem" "$F/trust/key.pem" >/dev/null
  IMG=$("$SLET" image pack "$F/root" -o "$F/hello.pack" --name hello --arg /hello)
  "$SLET" image sign "$F/hello.pack" --key "$F/key.pem" >/dev/null
  "$SLET" image import "$F/hello.pack" --store "$F/store" --trust "$F/trust" >/dev/null
  export IMG
  export PORT_API=$("$SC_FREEPORT") PORT_LOGS=$("$SC_FREEPORT")
  export API=http://127.0.0.1:$PORT_API LOGS=http://127.0.0.1:$PORT_LOGS
  export CGP=slet-test-$$ NODE=n1
  cg_parents >"$F/parents"
  "$SCTLD" --data-dir "$F/sc" --listen "127.0.0.1:$PORT_API" >"$F/sctld.log" 2>&1 &
  echo $! >"$F/sctld.pid"
  start_slet
}

teardown_file() {
  local p
  for p in slet sctld; do
    [ -f "$F/$p.pid" ] || continue
    kill "$(cat "$F/$p.pid")" 2>/dev/null || true
    wait_gone "$(cat "$F/$p.pid")"
  done
}

start_slet() {
  "$SLET" agent --server "$API" --name "$NODE" --data-dir "$F/data" --store "$F/store" \
    --trust "$F/trust" --listen "127.0.0.1:$PORT_LOGS" --cgroup-parent "$CGP" --grace 2 \
    >>"$F/slet.log" 2>&1 &
  echo $! >"$F/slet.pid"
  wait_for 10 curl -sf "$LOGS/healthz"
}

wait_gone() {
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# wait_for SECONDS CMD...: retries CMD every 0.1 s.
wait_for() {
  local n=$(($1 * 10)) i
  shift
  for i in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out: $*" >&2
  return 1
}

apply() { # apply REPLICAS GREETING
  curl -sf -X PUT "$API/v1/deployments/web" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":$1,\"env\":{\"GREETING\":\"$2\"},
    \"resources\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"ports\":[{\"name\":\"http\",\"container\":8080}]}}" >/dev/null
}

# Names of the Instances that are running and ready, sorted.
running() {
  curl -sf "$API/v1/instances" |
    jq -r '.items[] | select(.status.phase == "running" and .status.ready) | .metadata.name' | sort
}
instances() { curl -sf "$API/v1/instances" | jq -r '.items[].metadata.name' | sort; }
assignments() { curl -sf "$API/v1/assignments" | jq -r '.items[].metadata.name' | sort; }
n_running_is() { [ "$(running | wc -l)" -eq "$1" ] && [ "$(instances | wc -l)" -eq "$1" ]; }

# Where slet (our child, in our cgroups) makes its Cells' cgroups: $CGP under
# our own cgroup in every hierarchy (found as the Cell library finds them).
cg_parents() {
  local id ctrls path line mp rest fstype opts c all
  while IFS=: read -r id ctrls path; do
    while read -r line; do
      mp=$(echo "$line" | cut -d' ' -f5)
      rest=${line#* - }
      fstype=${rest%% *}
      opts=${rest##* }
      if [ -z "$ctrls" ] && [ "$fstype" = cgroup2 ]; then
        echo "$mp$path/$CGP" | sed 's#//*#/#g'
        break
      fi
      if [ -n "$ctrls" ] && [ "$fstype" = cgroup ]; then
        all=1
        for c in ${ctrls//,/ }; do [[ ",$opts," == *",$c,"* ]] || all=0; done
        [ "$all" = 1 ] && { echo "$mp$path/$CGP" | sed 's#//*#/#g'; break; }
      fi
    done </proc/self/mountinfo
  done </proc/self/cgroup
}
# Cell cgroup directories under our parent, in every hierarchy; their names.
cell_dirs() {
  local p
  for p in $(cat "$F/parents"); do
    [ -d "$p" ] && find "$p" -mindepth 1 -maxdepth 1 -type d
  done
  return 0
}
cell_names() { cell_dirs | xargs -r -n1 basename | sort -u; }
# /hello processes of one Cell, by its cgroup in the first hierarchy that has it.
hellos_of() {
  local d p n=0
  d=$(cell_dirs | grep "/$1\$" | head -1)
  for p in $(cat "$d/cgroup.procs" 2>/dev/null); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = hello ] && n=$((n + 1))
  done
  echo "$n"
}
state_files() { ls "$F/data/instances" | sed 's/\.json$//' | sort; }
leases() { ls "$F"/store/images/*/leases/ 2>/dev/null | sort; }

# Everything agrees: Instances, Assignments, cgroups, state files, image leases,
# and each Cell holds exactly one /hello.
consistent() { # consistent N
  local want n
  want=$(assignments)
  [ "$(echo "$want" | grep -c .)" -eq "$1" ] || return 1
  [ "$(running)" = "$want" ] && [ "$(instances)" = "$want" ] || return 1
  [ "$(cell_names)" = "$want" ] && [ "$(state_files)" = "$want" ] && [ "$(leases)" = "$want" ] || return 1
  for n in $want; do [ "$(hellos_of "$n")" -eq 1 ] || return 1; done
}

show() {
  echo "assignments: $(assignments | tr '\n' ' ')"
  echo "running:     $(running | tr '\n' ' ')"
  echo "cgroups:     $(cell_names | tr '\n' ' ')"
  echo "state files: $(state_files | tr '\n' ' ')"
  echo "leases:      $(leases | tr '\n' ' ')"
  tail -20 "$F/slet.log"
}

@test "the node registers with capacity, a heartbeat on a lease and its logs endpoint" {
  run curl -sf "$API/v1/nodes/$NODE"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.spec.capacity.cpuMillis')" -eq $(($(nproc) * 1000)) ]
  [ "$(echo "$output" | jq '.spec.allocatable.cpuMillis < .spec.capacity.cpuMillis')" = true ]
  [ "$(echo "$output" | jq -r '.status.logs')" = "$LOGS" ]
  run curl -sf "$API/v1/kv/%2Fregistry%2Fheartbeats%2F$NODE"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.kv.lease')" -gt 0 ]
}

@test "apply 4 replicas: 4 instances running, one Cell with one process each, logs served" {
  apply 4 a
  wait_for 20 consistent 4 || { show; false; }
  local n
  n=$(running | head -1)
  wait_for 5 bash -c "curl -sf '$LOGS/logs/$n' | grep -q 'hello: $n listening on port 8080'"
  run curl -s -o /dev/null -w '%{http_code}' "$LOGS/logs/nosuch"
  [ "$output" = 404 ]
}

@test "an instance's process killed: restarted and the restart counted" {
  local n d p
  n=$(running | head -1)
  d=$(cell_dirs | grep "/$n\$" | head -1)
  for p in $(cat "$d/cgroup.procs"); do [ "$(cat /proc/$p/comm)" = hello ] && break; done
  kill -9 "$p"
  wait_for 10 bash -c "curl -sf '$API/v1/instances/$n' | jq -e '.status.restarts == 1 and .status.phase == \"running\"'" ||
    { show; false; }
  wait_for 5 consistent 4 || { show; false; }
  ! kill -0 "$p" 2>/dev/null
}

@test "scale to 2: two Cells remain and nothing else is left behind" {
  apply 2 a
  wait_for 20 consistent 2 || { show; false; }
}

@test "env changed: the instances are replaced and the new ones see it" {
  local before n d p
  before=$(running)
  apply 2 b
  wait_for 20 bash -c "[ \"\$(curl -sf $API/v1/assignments | jq -r '.items[].metadata.name' | sort)\" != \"$before\" ]"
  wait_for 20 consistent 2 || { show; false; }
  [ "$(running)" != "$before" ]
  n=$(running | head -1)
  d=$(cell_dirs | grep "/$n\$" | head -1)
  for p in $(cat "$d/cgroup.procs"); do [ "$(cat /proc/$p/comm)" = hello ] && break; done
  tr '\0' '\n' <"/proc/$p/environ" | grep -qx GREETING=b
  tr '\0' '\n' <"/proc/$p/environ" | grep -qx "SC_INSTANCE=$n"
  tr '\0' '\n' <"/proc/$p/environ" | grep -qx PORT=8080
}

@test "slet killed and restarted: the same instances, no orphan, no duplicate" {
  local before old_pids p
  before=$(running)
  old_pids=$(for d in $(cell_dirs); do cat "$d/cgroup.procs"; done | sort -u)
  kill -9 "$(cat "$F/slet.pid")"
  wait_gone "$(cat "$F/slet.pid")"
  start_slet
  wait_for 20 consistent 2 || { show; false; }
  [ "$(running)" = "$before" ]
  for p in $old_pids; do ! kill -0 "$p" 2>/dev/null; done
  for n in $before; do
    [ "$(curl -sf "$API/v1/instances/$n" | jq '.status.restarts')" -ge 1 ]
  done
}

@test "a Deployment deleted while slet is down is cleaned up when it returns" {
  kill "$(cat "$F/slet.pid")"
  wait_gone "$(cat "$F/slet.pid")"
  curl -sf -X DELETE "$API/v1/deployments/web" >/dev/null
  wait_for 10 bash -c "[ -z \"\$(curl -sf $API/v1/assignments | jq -r '.items[]')\" ]"
  start_slet
  wait_for 20 bash -c "[ -z \"\$(curl -sf $API/v1/instances | jq -r '.items[]')\" ]" || { show; false; }
  [ -z "$(cell_names)" ] && [ -z "$(state_files)" ] && [ -z "$(leases)" ]
}

@test "apply then delete: all gone" {
  apply 3 c
  wait_for 20 consistent 3 || { show; false; }
  curl -sf -X DELETE "$API/v1/deployments/web" >/dev/null
  wait_for 20 bash -c "[ -z \"\$(curl -sf $API/v1/instances | jq -r '.items[]')\" ]" || { show; false; }
  [ -z "$(cell_names)" ]
  [ -z "$(state_files)" ] && [ -z "$(leases)" ]
}
