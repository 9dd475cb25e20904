#!/usr/bin/env bash
# The main job: installs what is missing, builds SwiftCube and runs a local
# cluster on this machine: one sctld (the control plane and its store), one slet
# (the node agent, running instances as Cells on a bridge), the example web app
# (examples/hello/hello.c) built, packed into an image, signed and imported, and
# examples/hello/hello.yaml applied with 4 replicas behind nginx (sclb programs
# it from the Endpoints of the ready instances).  It waits until they run, shows
# them, fetches pages through the load balancer, rolls out a new version while
# a client keeps fetching (and counts the failed requests: none), and keeps the
# cluster up until Ctrl-C, which stops everything (the Cells go with slet's
# instances when the Deployment is deleted on the way out).  Everything speaks
# mutual TLS under the cluster's own CA, as a real cluster does: sctld makes the
# CA and an admin certificate with an sctl config on its first start, the node
# joins with a bootstrap token and the CA's pinned hash (docs/operations.md).
#
#   scripts/run.sh                  data under ./swiftcube-data, API on 127.0.0.1:7400
#                                   (node logs :7401, join :7402, plain /healthz :7403)
#   SC_PORT=7500 scripts/run.sh     another API port (the load balancer: SC_LB_PORT, 8088)
#   SC_TOUR_ONLY=1 scripts/run.sh   stop after showing the running instances
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/deps.sh
[ "$(id -u)" -eq 0 ] || { echo "run.sh: Cells need root (namespaces, cgroups, a bridge)" >&2; exit 1; }

build=build-run
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/sctld/sctld src/slet/slet src/sctl/sctl src/sclb/sclb >"$build/ninja.log" 2>&1 ||
  { cat "$build/ninja.log"; exit 1; }
SCTLD=$top/$build/src/sctld/sctld SLET=$top/$build/src/slet/slet SCTL=$top/$build/src/sctl/sctl
SCLB=$top/$build/src/sclb/sclb

port=${SC_PORT:-7400}
lb_port=${SC_LB_PORT:-8088}
data=${SC_DATA:-$top/swiftcube-data}
export SCTL_SERVER=https://127.0.0.1:$port
pki=$data/sctld/pki
export SCTL_CONFIG=$pki/admin.conf # the CA and the admin certificate for sctl
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
join_port=$((port + 2)) health=http://127.0.0.1:$((port + 3))/healthz
"$SCTLD" --data-dir "$data/sctld" --listen "127.0.0.1:$port" --tls-dir "$pki" \
  --join-listen "127.0.0.1:$join_port" --health-listen "127.0.0.1:$((port + 3))" \
  --log-level warn >>"$data/sctld.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "$health" >/dev/null && break; sleep 0.05; done
curl -sf "$health" >/dev/null || { echo "sctld did not come up; see $data/sctld.log"; exit 1; }
# the hash nodes pin: SHA-256 of the CA's public key (kubeadm's recipe)
ca_hash=sha256:$(openssl x509 -in "$pki/ca.crt" -noout -pubkey | openssl pkey -pubin -outform der |
  sha256sum | cut -d' ' -f1)
echo "sctld (pid ${pids[0]}) serves $SCTL_SERVER (mutual TLS), data in $data/sctld"
echo "cluster CA $pki/ca.crt, $ca_hash; sctl uses $SCTL_CONFIG"

# 2. the example app's image: one static binary, packed, signed, imported
img=$data/image
mkdir -p "$img/root"/{proc,dev,tmp,run} "$img/trust"
cc -O2 -static -o "$img/root/hello" examples/hello/hello.c
[ -f "$img/key.pem" ] || "$SLET" image keygen "$img/key.pem" "$img/trust/key.pem" >/dev/null
id=$("$SLET" image pack "$img/root" -o "$img/hello.pack" --name hello --arg /hello)
"$SLET" image sign "$img/hello.pack" --key "$img/key.pem" >/dev/null
"$SLET" image import "$img/hello.pack" --store "$data/store" --trust "$img/trust" >/dev/null
# an earlier run's build of hello (another identity, the same name) would make the
# name ambiguous: remove the unused ones
"$SLET" image ls --store "$data/store" | awk -v id="$id" 'NR > 1 && $2 == "hello" && $1 != id { print $1 }' |
  while read -r old; do "$SLET" image rm "$old" --store "$data/store" >/dev/null 2>&1 || true; done
echo "image hello = $id (signed, in $data/store)"

# 3. the node agent: Cells get addresses on the bridge scbr0 (10.88.0.0/24)
#    It joins with a single-use bootstrap token (a restart keeps its certificate).
logs_port=$((port + 1))
token=$("$SCTL" token create --ttl 10m --description "run.sh node1")
echo "bootstrap token ${token%%.*}.**************** (sctl token create; single use, 10 minutes)"
"$SLET" agent --server "$SCTL_SERVER" --name node1 --data-dir "$data/slet" --store "$data/store" \
  --trust "$img/trust" --listen "127.0.0.1:$logs_port" --cell-net bridge --log-level warn \
  --join "https://127.0.0.1:$join_port" --token "$token" --ca-hash "$ca_hash" \
  >>"$data/slet.log" 2>&1 &
slet_pid=$!
pids+=("$slet_pid")
for _ in $(seq 200); do "$SCTL" get nodes 2>/dev/null | grep -Eq '^node1 +true' && break; sleep 0.05; done
echo "slet (pid $slet_pid) runs node1 with certificate $data/slet/pki/node.crt"

# 4. the load balancer programmer: nginx in front of each exposed port
"$SCLB" --server "$SCTL_SERVER" --ca "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  --dir "$data/lb" --listen-addr 127.0.0.1 --log-level warn \
  >>"$data/sclb.log" 2>&1 &
pids+=($!)
echo "sclb (pid $!) programs nginx from the Endpoints"

# 5. apply the example (its port exposed on 127.0.0.1:$lb_port) and wait for it
manifest=$data/hello.yaml
sed "s/listen: 8088/listen: $lb_port/" examples/hello/hello.yaml >"$manifest"
step "$SCTL" apply -f "$manifest" --wait --timeout 60s
step "$SCTL" get deployments
step "$SCTL" get instances -o wide
for _ in $(seq 100); do
  "$SCTL" get endpoints hello-http -o json 2>/dev/null |
    jq -e '.status.served and .status.endpoints == 4 and .status.generation == .metadata.generation' >/dev/null && break
  sleep 0.1
done
step "$SCTL" get endpoints -o wide
echo; echo "through the load balancer (nginx on 127.0.0.1:$lb_port), 8 requests:"
for _ in $(seq 8); do curl -s "http://127.0.0.1:$lb_port/"; done

# 6. roll out a new version while a client keeps fetching through nginx
( n=0 f=0
  while [ ! -f "$data/.stop-client" ]; do
    curl -sf --max-time 2 "http://127.0.0.1:$lb_port/" >/dev/null || f=$((f + 1))
    n=$((n + 1))
  done
  echo "$n $f" >"$data/.client" ) &
client=$!
rm -f "$data/.stop-client"
sed 's/GREETING: hello/GREETING: bonjour/' "$manifest" >"$manifest.v2"
step "$SCTL" apply -f "$manifest.v2"
step "$SCTL" rollout status hello --timeout 120s
touch "$data/.stop-client"
wait "$client"
read -r n f <"$data/.client"
rm -f "$data/.stop-client" "$data/.client"
echo "a client fetched $n pages through nginx during the rollout: $f failed"
step "$SCTL" rollout history hello

[ "${SC_TOUR_ONLY:-0}" = 1 ] && exit 0
cat <<MSG

The cluster keeps running. Try:
  export SCTL_SERVER=$SCTL_SERVER SCTL_CONFIG=$SCTL_CONFIG
  curl http://127.0.0.1:$lb_port/                  # through nginx, to any ready instance
  $SCTL get instances -o wide          # each instance's address on scbr0
  $SCTL get endpoints -o wide          # what nginx is told to serve
  sed -i 's/replicas: 4/replicas: 6/' $manifest && $SCTL apply -f $manifest
  $SCTL rollout status hello           # follow a rollout; undo goes back
  $SCTL rollout undo hello
  $SCTL logs INSTANCE
Ctrl-C stops everything (the Deployment is deleted, its Cells stopped, then sclb (and
nginx), slet and sctld).
MSG
wait "${pids[0]}"
