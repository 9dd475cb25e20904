#!/usr/bin/env bash
# node_failure.sh: issue 7's failure benchmark on the namespace cluster of
# tests/system/cluster_lib.sh (three sctld, four slet with real Cells on their
# own bridges, a client host), release build, default timeouts (slet's 2 s
# heartbeat lease, sctld's 500 ms grace), mutual TLS everywhere as the harness
# runs by default (nodes joined by token; CL_TLS=0 for plain HTTP):
#
#   1. node failure: kill -9 of a node's slet and every process of its Cells (the
#      node with the most replicas of a 8-replica Deployment), until every replica
#      is ready again on another node (its Instance object reports another node
#      and ready: polled from the client host every ~50 ms); the node is started
#      again between trials.  Median of N trials (default 10).  Beside it, what
#      Kubernetes' defaults give for the same event: 40 s to NotReady plus the
#      300 s not-ready toleration before eviction (not run here: no kubelet).
#   2. controller failover: kill -9 of the leader sctld until the first
#      acknowledged write through a survivor (`sctl scale`, retried at once on
#      503, through every survivor in turn); the controller is started again and
#      caught up between trials.  Median of N trials.  Beside it, etcd's: the
#      first put acknowledged after kill -9 of the etcd leader is measured by
#      bench/raft_failover.sh (docs/benchmarks.md).
#
# Root (namespaces, Cells).  Everything the harness creates is removed on exit.
#   bench/node_failure.sh [N]        (SC_BENCH_BUILD=build-rb)
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
trials=${1:-10}
build=${SC_BENCH_BUILD:-build-rb}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/sctld/sctld src/slet/slet src/sctl/sctl src/sclb/sclb >/dev/null || exit 1
SCTLD=$top/$build/src/sctld/sctld SLET=$top/$build/src/slet/slet
SCTL=$top/$build/src/sctl/sctl SCLB=$top/$build/src/sclb/sclb
# shellcheck source=../tests/system/cluster_lib.sh
source "$top/tests/system/cluster_lib.sh"
export SC_SRCDIR=$top
source "$top/tests/system/sctld_lib.bash" # hello_image
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); mutual TLS: $([ "${CL_TLS:-1}" = 1 ] && echo on || echo off)"
res=$(mktemp -d /tmp/sc-node-failure-XXXXXX) # the trials' times (the harness's $dir goes at exit)

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

cluster_up || { echo "cannot build the hosts" >&2; exit 1; }
for n in 1 2 3; do start_controller $n; done
L=$(wait_leader 1 2 3) || { echo "no leader" >&2; exit 1; }
NODE_SERVER=([n1]="c1 c2 c3" [n2]="c2 c3 c1" [n3]="c3 c1 c2" [n4]="c1 c3 c2")
node_image || { echo "cannot build the test image" >&2; exit 1; }
for n in 1 2 3 4; do start_node $n; done
ready_nodes() { sctl_c "$1" get nodes | awk '$2 == "true" { n++ } END { print n + 0 }'; }
for _ in $(seq 100); do [ "$(ready_nodes "$L")" = 4 ] && break; sleep 0.2; done
[ "$(ready_nodes "$L")" = 4 ] || { echo "the nodes did not register" >&2; exit 1; }

cat >"$dir/web.yaml" <<EOF
app: web
image: hello@$IMG
replicas: 8
resources: { cpu: 50m, memory: 16Mi }
ports:
  - { name: http, container: 8080 }
health:
  readiness: { http: /healthz, port: http, period: 200ms, failureThreshold: 1 }
placement: { spread: node }
EOF
sctl_c "$L" apply -f "$dir/web.yaml" --wait --timeout 60s >/dev/null || { echo "apply failed" >&2; exit 1; }

# "NAME NODE READY" of web's Instances, through any controller that answers
instances() {
  local c
  for c in 1 2 3; do
    api "c$c" "/v1/instances?selector=deployment%3Dweb" 2>/dev/null |
      jq -r '.items[] | "\(.metadata.name) \(.spec.node) \(.status.ready)"' 2>/dev/null && return 0
  done
  return 1
}
# how many of web's 8 replicas are ready on a node other than $1
ready_off() { instances | awk -v n="$1" '$2 != n && $3 == "true" { c++ } END { print c + 0 }'; }

# ---- 1. node failure ----------------------------------------------------------
for t in $(seq "$trials"); do
  victim=$(instances | awk '{ c[$2]++ } END { for (n in c) if (c[n] > m) { m = c[n]; v = n }; print v }')
  k=${victim#n}
  on_victim=$(instances | awk -v n="$victim" '$2 == n { c++ } END { print c + 0 }')
  t0=$(ms)
  kill_node "$k"
  until [ "$(ready_off "$victim")" = 8 ]; do
    [ $(($(ms) - t0)) -lt 60000 ] || { echo "trial $t: not all ready after 60 s" >&2; break; }
    sleep 0.03
  done
  took=$(($(ms) - t0))
  echo "$took" >>"$res/node"
  echo "node trial $t: kill -9 of $victim ($on_victim replicas there) -> all 8 ready elsewhere in $took ms" >&2
  start_node "$k"
  for _ in $(seq 100); do [ "$(ready_nodes "$L" 2>/dev/null)" = 4 ] && break; sleep 0.2; done
  sleep 1
done

# ---- 2. controller failover ---------------------------------------------------
for t in $(seq "$trials"); do
  old=$(wait_leader 1 2 3) || { echo "no leader before trial $t" >&2; break; }
  rest=$(for c in 1 2 3; do [ "$c" != "$old" ] && echo "$c"; done)
  t0=$(ms)
  kill9 "c$old"
  acked=
  until [ -n "$acked" ]; do
    for c in $rest; do
      if sctl_c "$c" scale web --replicas $((8 + t % 2)) >/dev/null 2>&1; then acked=$c; break; fi
    done
    [ $(($(ms) - t0)) -lt 30000 ] || { echo "trial $t: no write acknowledged in 30 s" >&2; break; }
  done
  took=$(($(ms) - t0))
  echo "$took" >>"$res/ctl"
  echo "controller trial $t: kill -9 of leader c$old -> first acknowledged write through c$acked in $took ms" >&2
  start_controller "$old"
  for _ in $(seq 100); do
    [ "$(revision "$old" 2>/dev/null)" = "$(revision "$acked" 2>/dev/null)" ] && break
    sleep 0.1
  done
  sleep 1
done

node_med=$(median <"$res/node")
ctl_med=$(median <"$res/ctl")
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| measure (median of $trials) | SwiftCube | peer | goal |"
echo "|---|---|---|---|"
printf '| node failure (kill -9 of slet + Cells) -> all replicas ready elsewhere (ms) | %s | Kubernetes defaults: ~40,000 to NotReady + 300,000 toleration = ~340,000 (%sx) | 3,000: %s |\n' \
  "$node_med" "$(awk -v a="$node_med" 'BEGIN {printf "%.0f", 340000 / a}')" "$([ "$node_med" -le 3000 ] && echo met || echo missed)"
printf '| controller leader kill -9 -> first acknowledged write (ms) | %s | etcd: bench/raft_failover.sh | 300: %s |\n' \
  "$ctl_med" "$([ "$ctl_med" -le 300 ] && echo met || echo missed)"
echo "| cost of mutual TLS on put throughput | MEMBERS=3 bench/tls_put.sh | | 15 % |"
rm -rf "$res"
