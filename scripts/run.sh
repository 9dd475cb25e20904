#!/usr/bin/env bash
# The main job: installs what is missing, builds SwiftCube and runs a local
# cluster on this machine: one sctld (the control plane and its store), one slet
# (the node agent, running instances as Cells on a bridge), the example web app
# (examples/hello/hello.c) built, packed into an image, signed and imported, and
# examples/hello/hello.yaml applied with 4 replicas.  It waits until they run,
# shows them, fetches a page from one, and keeps the cluster up until Ctrl-C,
# which stops everything (the Cells go with slet's instances when the
# Deployment is deleted on the way out).
#
#   scripts/run.sh                  data under ./swiftcube-data, API on 127.0.0.1:7400
#   SC_PORT=7500 scripts/run.sh     another API port
#   SC_TOUR_ONLY=1 scripts/run.sh   stop after showing the running instances
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/deps.sh
[ "$(id -u)" -eq 0 ] || { echo "run.sh: Cells need root (namespaces, cgroups, a bridge)" >&2; exit 1; }

build=build-run
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/sctld/sctld src/slet/slet src/sctl/sctl >"$build/ninja.log" 2>&1 ||
  { cat "$build/ninja.log"; exit 1; }
SCTLD=$top/$build/src/sctld/sctld SLET=$top/$build/src/slet/slet SCTL=$top/$build/src/sctl/sctl

port=${SC_PORT:-7400}
data=${SC_DATA:-$top/swiftcube-data}
export SCTL_SERVER=http://127.0.0.1:$port
mkdir -p "$data"
pids=()
cleanup() {
  set +e
  if [ -n "${slet_pid:-}" ] && kill -0 "$slet_pid" 2>/dev/null; then
    echo "stopping: deleting the Deployment, then slet and sctld"
    "$SCTL" delete deployment hello >/dev/null 2>&1
    for _ in $(seq 50); do
      [ "$("$SCTL" get instances -o json 2>/dev/null | jq '.items | length')" = 0 ] && break
      sleep 0.1
    done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
    wait "${pids[$i]}" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# 1. the control plane
"$SCTLD" --data-dir "$data/sctld" --listen "127.0.0.1:$port" --log-level warn >>"$data/sctld.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "$SCTL_SERVER/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "$SCTL_SERVER/healthz" >/dev/null || { echo "sctld did not come up; see $data/sctld.log"; exit 1; }
echo "sctld (pid ${pids[0]}) serves $SCTL_SERVER, data in $data/sctld"

# 2. the example app's image: one static binary, packed, signed, imported
img=$data/image
mkdir -p "$img/root"/{proc,dev,tmp,run} "$img/trust"
cc -O2 -static -o "$img/root/hello" examples/hello/hello.c
[ -f "$img/key.pem" ] || "$SLET" image keygen "$img/key.pem" "$img/trust/key.pem" >/dev/null
id=$("$SLET" image pack "$img/root" -o "$img/hello.pack" --name hello --arg /hello)
"$SLET" image sign "$img/hello.pack" --key "$img/key.pem" >/dev/null
"$SLET" image import "$img/hello.pack" --store "$data/store" --trust "$img/trust" >/dev/null
echo "image hello = $id (signed, in $data/store)"

# 3. the node agent: Cells get addresses on the bridge scbr0 (10.88.0.0/24)
logs_port=$((port + 1))
"$SLET" agent --server "$SCTL_SERVER" --name node1 --data-dir "$data/slet" --store "$data/store" \
  --trust "$img/trust" --listen "127.0.0.1:$logs_port" --cell-net bridge --log-level warn \
  >>"$data/slet.log" 2>&1 &
slet_pid=$!
pids+=("$slet_pid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$logs_port/healthz" >/dev/null && break; sleep 0.05; done
echo "slet (pid $slet_pid) runs node1"

# 4. apply the example and wait for it
step "$SCTL" apply -f examples/hello/hello.yaml --wait --timeout 60s
step "$SCTL" get deployments
step "$SCTL" get instances -o wide
addr=$("$SCTL" get instances -o json | jq -r '[.items[] | select(.status.ready) | .status.addresses[0]][0] // empty')
if [ -n "$addr" ]; then
  step curl -s "http://$addr:8080/"
fi

[ "${SC_TOUR_ONLY:-0}" = 1 ] && exit 0
cat <<MSG

The cluster keeps running. Try:
  export SCTL_SERVER=$SCTL_SERVER
  $SCTL get instances -o wide          # each instance's address on scbr0
  curl http://${addr:-ADDRESS}:8080/             # an instance answers
  $SCTL scale deployment hello --replicas 2
  $SCTL logs INSTANCE
Ctrl-C stops everything (the Deployment is deleted, its Cells stopped, then slet and sctld).
MSG
wait "${pids[0]}"
