#!/usr/bin/env bash
# The main job: installs what is missing, builds SwiftCube, starts a local sctld
# and walks through the store (put, get, list, transaction, watch, lease), then
# keeps sctld running until Ctrl-C.  SC_TOUR_ONLY=1 stops it after the tour.
#
#   scripts/run.sh                 data in ./sctld-data, API on 127.0.0.1:7400
#   SC_PORT=7500 scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build=build-run
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" src/sctld/sctld >"$build/ninja.log" 2>&1 || { cat "$build/ninja.log"; exit 1; }

port=${SC_PORT:-7400}
data=${SC_DATA:-$PWD/sctld-data}
url=http://127.0.0.1:$port
"$build/src/sctld/sctld" --data-dir "$data" --listen "127.0.0.1:$port" --log-level warn &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "$url/healthz" >/dev/null || { echo "sctld did not come up"; exit 1; }

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; eval "$@"; }
echo "sctld (pid $pid) is serving $url with its data in $data"
step "curl -s -X PUT --data-binary 'hello' $url/v1/kv/demo/greeting"
step "curl -s $url/v1/kv/demo/greeting"
# A watcher on the prefix, from the start of history, in the background.
curl -sN --max-time 2 "$url/v1/kv?prefix=demo/&watch=1&rev=1" >/tmp/sc-tour-watch.$$ &
wpid=$!
step "curl -s -X PUT --data-binary 'v1' $url/v1/kv/demo/config"
step "curl -s '$url/v1/kv?prefix=demo/'"
step "curl -s -X POST $url/v1/txn -d '{\"compare\":[{\"key\":\"demo/config\",\"target\":\"value\",\"result\":\"=\",\"value\":\"v1\"}],\"success\":[{\"put\":{\"key\":\"demo/config\",\"value\":\"v2\"}}],\"failure\":[{\"get\":{\"key\":\"demo/config\"}}]}'"
lease=$(curl -s -X POST "$url/v1/leases" -d '{"ttl": 2}' | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
step "curl -s -X PUT --data-binary 'up' '$url/v1/kv/demo/heartbeat?lease=$lease'"
step "curl -s -X DELETE $url/v1/kv/demo/greeting"
wait "$wpid" || true
echo "The watcher saw, in order:"
cat /tmp/sc-tour-watch.$$; rm -f /tmp/sc-tour-watch.$$
echo
echo "demo/heartbeat lives on lease $lease (ttl 2 s) and vanishes when it expires:"
sleep 3
step "curl -s '$url/v1/kv?prefix=demo/&keys_only=1'"
step "curl -s $url/metrics | grep -E '^sc_(store_revision|store_keys|wal_syncs_total)'"
if [ "${SC_TOUR_ONLY:-0}" = 1 ]; then exit 0; fi
echo "sctld keeps running at $url (docs/api.md lists the API). Ctrl-C stops it."
wait "$pid"
