#!/usr/bin/env bash
# rollout_bench.sh: issue 6's rollout benchmark.  Release build (build-rb), one run:
#
#   1. one real node: sctld + `slet agent` (Cells on a bridge of its own, scrb0,
#      10.89.9.0/24) + sclb programming nginx, 4 replicas of examples/hello/hello.c
#      behind it.  For each strategy (rolling maxSurge 1 maxUnavailable 0,
#      blue-green, a canary step of 10 % then `sctl rollout promote`): the time from the PUT of
#      the changed spec until status.rollout.phase is complete, and the failed
#      requests of a client loop through nginx during it.  Canary: the share of 1,000
#      requests answered by the new revision while paused.  Times come from a watch
#      of the Deployments opened before the PUT, each line stamped on arrival with
#      bash's $EPOCHREALTIME (no polling of the API).
#   2. endpoint change to the LB serving the new set, end to end: GET /fail on one
#      instance (its readiness probe, period 1 s, fails), until nginx stops sending
#      to it (bench/lb_poll: a GET through nginx every 2 ms, each stamped; one in 4
#      reaches it, so the resolution is ~10 ms), with the steps from a stamped watch of the Endpoints: the probe
#      + endpoints loop (Endpoints drop it) and sclb (its status serves that
#      generation).  Median of 5.
#   3. simulated: `slet agent --simulate 10`, one Deployment of 100 replicas without
#      an exposed port, a rolling update (maxSurge 25, maxUnavailable 0): the time
#      until complete and the control plane's own time (sctld's
#      sc_sched_plan_seconds_total + sc_sched_view_seconds_total, after - before).
#
# Root (Cells, a bridge).  Every process is ended by its PID; the bridge is deleted.
#
#   bench/rollout_bench.sh        (SC_BENCH_BUILD=build-rb; data under /var/tmp)
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
[ "$(id -u)" -eq 0 ] || { echo "rollout_bench: Cells need root" >&2; exit 1; }
command -v nginx >/dev/null || { echo "rollout_bench: needs nginx (scripts/deps.sh)" >&2; exit 1; }
build=${SC_BENCH_BUILD:-build-rb}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/sctld/sctld src/slet/slet src/sctl/sctl src/sclb/sclb bench/lb_poll >/dev/null || exit 1
SCTLD=$top/$build/src/sctld/sctld SLET=$top/$build/src/slet/slet SCTL=$top/$build/src/sctl/sctl
SCLB=$top/$build/src/sclb/sclb
POLL=$top/$build/bench/lb_poll
BRIDGE=scrb0 RANGE=10.89.9.0/24
dir=$(mktemp -d /var/tmp/sc-rollout-bench.XXXXXX)
pids=()
stop_all() { # newest first: sclb (its nginx), slet, sctld; the watches
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
    wait "${pids[$i]}" 2>/dev/null
  done
  pids=()
}
cleanup() {
  stop_all
  ip link del "$BRIDGE" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$((20000 + RANDOM % 20000))
lport=$((port + 1)) lb=$((port + 2))
U=http://127.0.0.1:$port
export SCTL_SERVER=$U
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", (b - a) * 1000}'; }
# stamp FILE: each line of stdin, prefixed with its arrival time
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$1"; }
# watch KIND FILE: a stamped watch in the background (its PID in pids); returns once open
watch() {
  curl -sN "$U/v1/$1?watch=1" > >(stamp "$2") &
  pids+=($!)
  until [ -s "$2" ]; do sleep 0.01; done
}
# first_at FILE GEN PHASE: the stamp of the first Deployment event at generation >= GEN,
# observed, in PHASE (empty if none yet)
first_at() {
  jq -Rrn --argjson g "$2" --arg ph "$3" '
    first(inputs | capture("^(?<ts>[0-9.]+) (?<j>.*)$") | (.j | fromjson) as $e | select($e.object?)
      | select($e.object.metadata.generation >= $g
               and $e.object.status.observedGeneration == $e.object.metadata.generation
               and $e.object.status.rollout.phase == $ph) | .ts)' <"$1" 2>/dev/null
}
# wait_phase FILE GEN PHASE TIMEOUT_S: waits (rare polls of the stamped file) and prints the stamp
wait_phase() {
  local t end=$((SECONDS + $4))
  while [ $SECONDS -lt $end ]; do
    t=$(first_at "$1" "$2" "$3")
    [ -n "$t" ] && { echo "$t"; return 0; }
    sleep 0.2
  done
  echo "timeout waiting for phase $3 at generation $2" >&2
  return 1
}
served() { # N: nginx serves the Endpoints' current generation with N endpoints
  curl -s "$U/v1/endpoints/hello-http" | jq -e --argjson n "$1" \
    '.status.served == true and .status.endpoints == $n and .status.generation == .metadata.generation
     and (.spec.endpoints | length) == $n' >/dev/null
}
wait_served() { for _ in $(seq 300); do served "$1" && return 0; sleep 0.1; done; echo "not served: $1" >&2; return 1; }
# deploy NAME REPLICAS V UPDATE_JSON PORTS_JSON: PUT; prints the stored metadata.generation
deploy() {
  curl -sf -X PUT "$U/v1/deployments/$1" -d "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"$1\"},
    \"spec\":{\"image\":\"hello@$IMG\",\"replicas\":$2,\"env\":{\"V\":\"$3\"},\"update\":$4,
    \"health\":{\"readiness\":{\"http\":\"/healthz\",\"port\":8080,\"period\":\"1s\",\"failureThreshold\":1}},
    \"resources\":{\"cpu\":\"10m\",\"memory\":\"8Mi\"},\"ports\":$5}}" | jq .object.metadata.generation
}
# client FILE: requests through nginx until FILE.stop exists; writes "n failed" to FILE
client() {
  local n=0 f=0
  while [ ! -f "$1.stop" ]; do
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$lb/" || f=$((f + 1))
    n=$((n + 1))
  done
  echo "$n $f" >"$1"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
ip -br addr | grep -q "${RANGE%.*}\." && { echo "rollout_bench: $RANGE is in use here" >&2; exit 1; }

# ---- 1. one real node: sctld, slet (Cells on scrb0), sclb (nginx) ------------------------
img=$dir/image
mkdir -p "$img/root"/{proc,dev,tmp,run} "$img/trust"
cc -O2 -static -o "$img/root/hello" examples/hello/hello.c
"$SLET" image keygen "$img/key.pem" "$img/trust/key.pem" >/dev/null
IMG=$("$SLET" image pack "$img/root" -o "$img/hello.pack" --name hello --arg /hello)
"$SLET" image sign "$img/hello.pack" --key "$img/key.pem" >/dev/null
"$SLET" image import "$img/hello.pack" --store "$dir/store" --trust "$img/trust" >/dev/null
"$SCTLD" --data-dir "$dir/real" --listen "127.0.0.1:$port" --log-level warn >>"$dir/sctld.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "$U/healthz" >/dev/null && break; sleep 0.05; done
"$SLET" agent --server "$U" --name node1 --data-dir "$dir/slet" --store "$dir/store" \
  --trust "$img/trust" --listen "127.0.0.1:$lport" --cgroup-parent "rollout-bench-$$" \
  --cell-net bridge --bridge "$BRIDGE" --cell-range "$RANGE" --grace 2 --log-level warn \
  >>"$dir/slet.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$lport/healthz" >/dev/null && break; sleep 0.05; done
"$SCLB" --server "$U" --dir "$dir/lb" --listen-addr 127.0.0.1 --log-level "${SC_SCLB_LOG:-warn}" \
  >>"$dir/sclb.log" 2>&1 &
pids+=($!)
PORTS="[{\"name\":\"http\",\"container\":8080,\"expose\":{\"via\":\"lb\",\"provider\":\"nginx\",\"listen\":$lb,\"protocol\":\"http\"}}]"
ROLLING='{"strategy":"rolling","maxSurge":1,"maxUnavailable":0}'
watch deployments "$dir/wd"
deploy hello 4 1 "$ROLLING" "$PORTS" >/dev/null || { echo "PUT failed" >&2; exit 1; }
wait_phase "$dir/wd" 1 complete 120 >/dev/null || exit 1
wait_served 4 || exit 1

declare -A total fails reqs
v=1
# SC_ROLLOUT_FLIP_ONLY=1: only part 2 (the LB switch), e.g. with SC_SCLB_LOG=info
[ -n "${SC_ROLLOUT_FLIP_ONLY:-}" ] && kinds="" || kinds="rolling blue-green canary"
for kind in $kinds; do
  case $kind in
    rolling) upd=$ROLLING ;;
    blue-green) upd='{"strategy":"blue-green"}' ;;
    canary) upd='{"strategy":"canary","steps":[{"weight":10}]}' ;;
  esac
  rm -f "$dir/client.$kind" "$dir/client.$kind.stop"
  client "$dir/client.$kind" &
  cpid=$!
  sleep 0.5
  v=$((v + 1))
  g=$(deploy hello 4 "$v" "$upd" "$PORTS")
  t0=$EPOCHREALTIME
  if [ "$kind" = canary ]; then
    tp=$(wait_phase "$dir/wd" "$g" paused 120) || exit 1
    wait_served 5 || exit 1
    newrev=$(curl -s "$U/v1/deployments/hello" | jq -r .status.rollout.revision)
    curl -s "$U/v1/instances?selector=deployment%3Dhello" |
      jq -r '.items[] | "\(.metadata.name) \(.spec.revision)"' >"$dir/revs"
    for _ in $(seq 1000); do curl -s --max-time 2 "http://127.0.0.1:$lb/"; echo; done |
      sed -n 's/^hello from \([^ ]*\) .*/\1/p' >"$dir/canary.hits"
    canary_n=$(awk -v r="$newrev" 'NR == FNR { rev[$1] = $2; next } { n++; if (rev[$1] == r) c++ }
      END { printf "%d %d", c, n }' "$dir/revs" "$dir/canary.hits")
    tpr=$EPOCHREALTIME
    "$SCTL" rollout promote hello >/dev/null || echo "promote failed" >&2
    g2=$(curl -s "$U/v1/deployments/hello" | jq .metadata.generation)
    tc=$(wait_phase "$dir/wd" "$g2" complete 120) || exit 1
    canary_paused=$(ms "$t0" "$tp")
    canary_promoted=$(ms "$tpr" "$tc")
    total[$kind]=$((canary_paused + canary_promoted))
  else
    tc=$(wait_phase "$dir/wd" "$g" complete 120) || exit 1
    total[$kind]=$(ms "$t0" "$tc")
  fi
  wait_served 4
  sleep 0.5
  touch "$dir/client.$kind.stop"
  wait "$cpid"
  read -r reqs[$kind] fails[$kind] <"$dir/client.$kind"
  echo "$kind: ${total[$kind]} ms, ${reqs[$kind]} requests, ${fails[$kind]} failed" >&2
done
read -r canary_new canary_all <<<"${canary_n:-0 0}"

# ---- 2. readiness flip -> nginx stops sending to the instance ------------------------------
watch endpoints "$dir/we"
for t in 1 2 3 4 5; do
  sick=$(curl -s "$U/v1/instances?selector=deployment%3Dhello" |
    jq -r '[.items[] | select(.status.ready)][0] | "\(.metadata.name) \(.status.addresses[0])"')
  read -r sname saddr <<<"$sick"
  rm -f "$dir/hits.stop"
  # a request every 2 ms on a new connection (bench/lb_poll.c): a curl loop's
  # 30-130 ms per request could only bound the switch to a few hundred ms
  "$POLL" "$lb" "$dir/hits.stop" 2 >"$dir/hits.$t" &
  hpid=$!
  sleep 0.5
  nwe=$(wc -l <"$dir/we")
  t0=$EPOCHREALTIME
  curl -sf "http://$saddr:8080/fail" >/dev/null
  wait_served 3
  sleep 0.5
  touch "$dir/hits.stop"
  wait "$hpid"
  # the last answer from the sick instance, then the first request after it
  tl=$(awk -v s="$sname" -v t0="$t0" '$1 > t0 && $4 == s { last = $1 } END { print last }' "$dir/hits.$t")
  [ -z "$tl" ] && tl=$t0
  tf=$(awk -v t="$tl" '$1 > t { print $1; exit }' "$dir/hits.$t")
  # Endpoints without it, and sclb's status serving that generation (the watch)
  read -r te ts < <(tail -n +"$((nwe + 1))" "$dir/we" | jq -Rrn --arg s "$sname" '
    [inputs | capture("^(?<ts>[0-9.]+) (?<j>.*)$") | (.j | fromjson) as $e | select($e.object?)
     | {ts, o: $e.object}] as $ev
    | ($ev | map(select([.o.spec.endpoints[]? | tostring | test($s)] | any | not)) | first) as $d
    | ($ev | map(select(.o.status.generation? == $d.o.metadata.generation and .o.status.served)) | first) as $v
    | "\($d.ts) \($v.ts)"')
  echo "$(ms "$t0" "$tf") $(ms "$t0" "$te") $(ms "$te" "$tf") $(ms "$te" "$ts")" >>"$dir/flip"
  echo "flip $t ($sname): LB stops at $(ms "$t0" "$tf") ms; Endpoints at $(ms "$t0" "$te"), then LB stops +$(ms "$te" "$tf"), sclb status +$(ms "$te" "$ts")" >&2
  curl -sf "http://$saddr:8080/recover" >/dev/null
  wait_served 4
  sleep 1
done
flip_lb=$(cut -d' ' -f1 "$dir/flip" | median)
flip_ep=$(cut -d' ' -f2 "$dir/flip" | median)
flip_lbonly=$(cut -d' ' -f3 "$dir/flip" | median)
flip_status=$(cut -d' ' -f4 "$dir/flip" | median)

curl -sf -X DELETE "$U/v1/deployments/hello" >/dev/null
for _ in $(seq 100); do
  [ "$(curl -s "$U/v1/instances" | jq '.items | length')" = 0 ] && break
  sleep 0.1
done
stop_all
ip link del "$BRIDGE" 2>/dev/null

if [ -n "${SC_ROLLOUT_FLIP_ONLY:-}" ]; then
  [ -n "${SC_SCLB_LOG:-}" ] && cp "$dir/sclb.log" /tmp/rollout_bench.sclb.log
  stop_all
  echo "Endpoints change -> nginx stops sending: median $flip_lbonly ms; -> sclb status $flip_status ms"
  exit 0
fi
# ---- 3. simulated: 10 nodes, 100 replicas ---------------------------------------------------
"$SCTLD" --data-dir "$dir/sim" --listen "127.0.0.1:$port" --log-level warn >>"$dir/sctld.log" 2>&1 &
pids+=($!)
sctld_pid=$!
for _ in $(seq 200); do curl -sf "$U/healthz" >/dev/null && break; sleep 0.05; done
"$SLET" agent --server "$U" --name sim --data-dir "$dir/slet-sim" --simulate 10 --log-level warn \
  >>"$dir/slet-sim.log" 2>&1 &
pids+=($!)
until [ "$(curl -s "$U/v1/kv?prefix=/registry/heartbeats/&count_only=1" | jq .count)" = 10 ]; do sleep 0.2; done
SIMUPD='{"strategy":"rolling","maxSurge":25,"maxUnavailable":0}'
watch deployments "$dir/ws"
g=$(deploy sim 100 1 "$SIMUPD" '[]')
wait_phase "$dir/ws" "$g" complete 120 >/dev/null || exit 1
busy() { curl -s "$U/metrics" | awk '/^sc_sched_(view|plan)_seconds_total/ {s += $2} END {printf "%.6f", s}'; }
cpu() { awk '{print $14 + $15}' "/proc/$sctld_pid/stat"; }
b0=$(busy) c0=$(cpu)
g=$(deploy sim 100 2 "$SIMUPD" '[]')
t0=$EPOCHREALTIME
tc=$(wait_phase "$dir/ws" "$g" complete 300) || exit 1
sleep 0.3 # the last plan's metrics
b1=$(busy) c1=$(cpu)
sim_total=$(ms "$t0" "$tc")
sim_own=$(awk -v a="$b0" -v b="$b1" 'BEGIN {printf "%.1f", (b - a) * 1000}')
sim_cpu=$(( (c1 - c0) * 10 ))
stop_all

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
goal0() { [ "$1" = 0 ] && echo "goal 0: met" || echo "goal 0: missed"; }
echo "| measure | SwiftCube | anchor | goal |"
echo "|---|---|---|---|"
for kind in rolling blue-green canary; do
  printf '| 4 replicas, %s: PUT -> complete (ms) | %s | | |\n' "$kind" "${total[$kind]}"
  printf '| 4 replicas, %s: failed requests through nginx | %s of %s | | %s |\n' \
    "$kind" "${fails[$kind]}" "${reqs[$kind]}" "$(goal0 "${fails[$kind]}")"
done
printf '| canary: PUT -> paused / promote -> complete (ms) | %s / %s | | |\n' "$canary_paused" "$canary_promoted"
share=$(awk -v c="$canary_new" -v n="$canary_all" 'BEGIN {printf "%.1f", n ? 100 * c / n : 0}')
printf '| canary 10 %%: share of %s requests to the new revision while paused | %s %% | | 10 ± 3 %%: %s |\n' \
  "$canary_all" "$share" "$(awk -v s="$share" 'BEGIN {print (s >= 7 && s <= 13) ? "met" : "missed"}')"
printf '| readiness flip (GET /fail, probe period 1 s) -> nginx stops sending to it, median of 5 (ms) | %s | | |\n' "$flip_lb"
printf '| of which: flip -> Endpoints without it (probe + endpoints loop) (ms) | %s | | |\n' "$flip_ep"
printf '| Endpoints change -> nginx stops sending to it (sclb + reload), median (ms) | %s | src/lb alone: nginx 55 ms, raw reload 72 ms | 100 ms: %s |\n' \
  "$flip_lbonly" "$([ "$flip_lbonly" -le 100 ] && echo met || echo missed)"
printf '| Endpoints change -> sclb status serves it (apply confirmed + status PUT), median (ms) | %s | lb_bench nginx call 138 ms | |\n' "$flip_status"
printf '| 100 simulated replicas (10 nodes), rolling maxSurge 25: PUT -> complete (ms) | %s | | |\n' "$sim_total"
printf '| of which the control plane own time: plan + view (ms) / sctld CPU (ms) | %s / %s | | < 1 s: %s |\n' \
  "$sim_own" "$sim_cpu" "$(awk -v s="$sim_own" 'BEGIN {print (s < 1000) ? "met" : "missed"}')"
