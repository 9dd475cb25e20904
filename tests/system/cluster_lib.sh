# cluster_lib.sh: the multi-host test harness (issue 7, part 3), sourced by
# tests/system/cluster.sh.  Every host is a network namespace on one bridge with
# no uplink, and runs the real binaries:
#
#   host    address        runs                          namespace
#   c1..c3  10.79.0.1-3    sctld (API :7400, Raft :7410) TAG-c1 ..
#   n1..n4  10.79.0.11-14  slet agent (logs :7420), its   TAG-n1 ..
#                          Cells on bridge cbrN, range
#                          10.79.N.0/24 (N = 1..4)
#   lb      10.79.0.50     sclb and the nginx it drives  TAG-lb
#   client  10.79.0.100    sctl and curl                 TAG-client
#
# The bridge br0 lives in a namespace of its own (TAG-br) holding one veth per
# host (vHOST); no namespace has a route out, and nothing here sends to an address
# outside 10.79.0.0/16.  Routing is flat L3: every host routes 10.79.N.0/24 via
# nN's address, and the node namespaces forward (net.ipv4.ip_forward=1), so the lb
# and the client reach every node's Cells and Cells answer back the same way.
#
# Why nsenter --net and not `ip netns exec`: the latter remounts /sys, which
# hides /sys/fs/cgroup, and slet needs the cgroup hierarchies for its Cells.
#
# Why the cuts are nftables rules in the bridge's namespace (a `bridge` family
# table, chain on the forward hook): they drop frames between chosen ports, so a
# cut host still has its link and addresses (its sends vanish, as across a real
# partition, instead of failing at once with "network unreachable"), and any
# grouping of hosts can be cut.  This kernel has no VLAN filtering on bridges, which
# would have been the other way without a new package.
#
# What it gives (each described where defined):
#   cluster_up                 the namespaces, bridge, routes
#   on HOST CMD...             run CMD in HOST's network namespace
#   start_controller N         launch lines, ONE place per binary (with CL_TLS=1,
#   start_node N               the default: --tls-dir and --join-listen, slet
#   start_lb                   --join with a token, sclb with the admin pair)
#   api / api_from / curl_node curl from a host with the admin's (a node: c1's) pair
#   sctl_c N ARGS...           sctl from the client host against cN
#   stop HOST / kill9 HOST / restart HOST / kill_node N
#   partition HOST / split "A B" "C D ..." / heal / latency HOST MS
#   leader [N...] / wait_leader N... / revision N / wait_for SEC CMD...
#
# Everything it creates (namespaces with their links and nftables tables, the
# Cells' cgroups, processes by PID, the temp dir) goes in the EXIT trap, even
# after a failure; SC_KEEP=1 keeps the temp dir (logs).  Processes are ended by
# their PID: the ones it started (PID[]), then, as a safety net, whatever still
# runs in one of its namespaces (`ip netns pids`) or in one of its Cells' cgroups.
#
# Use: SCTLD=.. SLET=.. SCTL=.. SCLB=.. source cluster_lib.sh; needs root, ip,
# nsenter, nft, curl, jq, cc, nginx; prints a TAP skip and exits 0 otherwise (meson: SKIP).

CL_NET=10.79
CL_PORT_API=7400
CL_PORT_PEER=7410
CL_PORT_JOIN=7402
CL_PORT_LOGS=7420
# Mutual TLS everywhere (the default, as a cluster runs): c1 creates the CA on its
# first start, c2 and c3 get ca.crt/ca.key copied before theirs (the operator's
# step, docs/operations.md), nodes join with a bootstrap token and the pinned CA
# hash, sctl/curl/sclb present the admin certificate.  CL_TLS=0: plain HTTP.
CL_TLS=${CL_TLS:-1}
CL_TOKEN=
CL_HOSTS=(c1 c2 c3 n1 n2 n3 n4 lb client)
declare -A IP=([c1]=$CL_NET.0.1 [c2]=$CL_NET.0.2 [c3]=$CL_NET.0.3
  [n1]=$CL_NET.0.11 [n2]=$CL_NET.0.12 [n3]=$CL_NET.0.13 [n4]=$CL_NET.0.14
  [lb]=$CL_NET.0.50 [client]=$CL_NET.0.100)
declare -A PID   # HOST -> PID of the daemon the harness started there
# The controller(s) each node's slet talks to, "c2" or "c2 c3" (given to --server
# joined by commas; today slet takes one URL and does not fail over:
# docs/cluster_tests.md).  The scenario sets them before start_node.
declare -A NODE_SERVER
LB_SERVER=
CL_IC="c1=${IP[c1]}:$CL_PORT_PEER,c2=${IP[c2]}:$CL_PORT_PEER,c3=${IP[c3]}:$CL_PORT_PEER"

cl_skip() { echo "1..0 # SKIP $*"; exit 0; }
[ "$(id -u)" = 0 ] || cl_skip "not root (network namespaces, Cells)"
for _t in ip nsenter nft curl jq cc nginx; do
  command -v $_t >/dev/null || cl_skip "needs $_t (scripts/deps.sh installs it)"
done
for _t in SCTLD SLET SCTL SCLB; do
  [ -x "${!_t:-}" ] || { echo "Bail out! \$$_t is not an executable: '${!_t:-}'"; exit 1; }
done
tag=sccl$$
{ ip netns add $tag-br && ip netns del $tag-br; } 2>/dev/null || cl_skip "cannot create network namespaces"

if [ "$CL_TLS" = 1 ]; then CL_SCHEME=https; else CL_SCHEME=http; fi
url() { echo "$CL_SCHEME://${IP[$1]}:$CL_PORT_API"; }
# the operator's files (c1's --tls-dir): the CA, the admin pair, c1's controller pair
cl_pki() { echo "$dir/c1/pki"; }
# curl's TLS flags as the admin (or, with "controller", as c1: what nodes' logs
# endpoints answer); nothing without TLS
cl_curl_tls() {
  [ "$CL_TLS" = 1 ] || return 0
  local who=${1:-admin}
  echo "--cacert $(cl_pki)/ca.crt --cert $(cl_pki)/$who.crt --key $(cl_pki)/$who.key"
}
# sctl's TLS flags as the admin (nothing without TLS)
cl_sctl_tls() {
  [ "$CL_TLS" = 1 ] && echo "--ca $(cl_pki)/ca.crt --cert $(cl_pki)/admin.crt --key $(cl_pki)/admin.key"
  return 0
}
# node_url N PATH: nN's logs endpoint
node_url() { echo "$CL_SCHEME://${IP[n$1]}:$CL_PORT_LOGS$2"; }
# curl_node HOST N PATH [curl args]: from HOST to nN's logs endpoint, as a controller
# shellcheck disable=SC2046
curl_node() { on "$1" curl -s -m 2 $(cl_curl_tls controller) "$(node_url "$2" "$3")" "${@:4}"; }
# urls "cA cB ...": their URLs joined by commas (one URL for one host)
urls() {
  local h out=
  for h in $1; do out+=${out:+,}$(url "$h"); done
  echo "$out"
}
on() { # on HOST CMD...: CMD in HOST's network namespace (mounts and cgroups kept)
  local h=$1
  shift
  nsenter --net=/run/netns/$tag-$h -- "$@"
}
# spawn HOST CMD... &: the same for a daemon: the background subshell becomes
# nsenter, which becomes CMD, so that $! is the daemon's own PID.
spawn() {
  local h=$1
  shift
  exec nsenter --net=/run/netns/$tag-$h -- "$@"
}
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
dead() { ! kill -0 "$1" 2>/dev/null; }

# wait_for SECONDS CMD...: retries CMD every 0.1 s; 1 when time runs out.
wait_for() {
  local end=$(($(ms) + $1 * 1000))
  shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(ms)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# ---- the hosts -------------------------------------------------------------------

# The directories under which slet (our child, in our cgroups) makes Cell cgroups:
# our own cgroup in every hierarchy, found as the Cell library finds them.  Read
# once, without forks (a fork costs milliseconds on a loaded CI machine).
cg_bases() {
  local id ctrls path line f mp rest fstype opts c all
  while IFS=: read -r id ctrls path; do
    while read -r line; do
      read -r -a f <<<"$line"
      mp=${f[4]}
      rest=${line#* - }
      fstype=${rest%% *}
      opts=${rest##* }
      if [ -z "$ctrls" ] && [ "$fstype" = cgroup2 ]; then
        echo "$mp$path"
        break
      fi
      if [ -n "$ctrls" ] && [ "$fstype" = cgroup ]; then
        all=1
        for c in ${ctrls//,/ }; do [[ ",$opts," == *",$c,"* ]] || all=0; done
        [ "$all" = 1 ] && { echo "$mp$path"; break; }
      fi
    done </proc/self/mountinfo
  done </proc/self/cgroup
}
mapfile -t CG_BASES < <(cg_bases)
# cg_parents N: node N's --cgroup-parent (TAG-nN) in every hierarchy.
cg_parents() {
  local b
  for b in "${CG_BASES[@]}"; do
    b="$b/$tag-n$1"
    while [[ $b == *//* ]]; do b=${b//\/\//\/}; done
    echo "$b"
  done
}

# kill_cells N: SIGKILL, by PID, every process in a Cell cgroup of node N.
kill_cells() {
  local p d pid procs
  for p in $(cg_parents "$1"); do
    [ -d "$p" ] || continue
    for d in "$p"/*/; do
      [ -f "$d/cgroup.procs" ] || continue
      mapfile -t procs <"$d/cgroup.procs"
      for pid in "${procs[@]}"; do kill -9 "$pid" 2>/dev/null; done
    done
  done
}

# rm_cgroups N: removes node N's Cell cgroups (after kill_cells) and its parent.
rm_cgroups() {
  local p d i
  for p in $(cg_parents "$1"); do
    [ -d "$p" ] || continue
    for i in 1 2 3 4 5 6 7 8 9 10; do
      for d in "$p"/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
      rmdir "$p" 2>/dev/null && break
      sleep 0.1
    done
  done
}

# san_logs: the daemons' logs that hold an ASan/UBSan/LSan report (CI's build has
# sanitizers; a daemon that hits one aborts, abort_on_error=1)
CL_SAN_RE='ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:'
san_logs() {
  [ -d "$dir" ] || return 0
  (cd "$dir" && grep -lE "$CL_SAN_RE" ./*.log 2>/dev/null | sed 's#^\./##')
}

cluster_cleanup() {
  local h pid n
  set +e
  # TERM everything at once (sclb stops nginx, slet its Cells), then wait, then KILL
  for h in lb n1 n2 n3 n4 c1 c2 c3; do [ -n "${PID[$h]:-}" ] && kill "${PID[$h]}" 2>/dev/null; done
  for h in lb n1 n2 n3 n4 c1 c2 c3; do
    pid=${PID[$h]:-}
    [ -n "$pid" ] || continue
    wait_for 10 dead "$pid" || kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "PID[$h]"
  done
  # a sanitizer report at shutdown is said (a scenario fails on one made while it runs)
  for h in $(san_logs); do
    echo "# WARNING: $h has a sanitizer report after SIGTERM: $(grep -m1 -E "$CL_SAN_RE" "$dir/$h")"
  done
  # the safety net: anything still in our namespaces or our Cells' cgroups
  for h in "${CL_HOSTS[@]}" br; do
    for pid in $(ip netns pids $tag-$h 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for n in 1 2 3 4; do kill_cells $n; done
  for n in 1 2 3 4; do rm_cgroups $n; done
  # a namespace goes with its links, addresses, routes, Cell bridge and nft tables
  for h in "${CL_HOSTS[@]}" br; do ip netns del $tag-$h 2>/dev/null; done
  [ -n "$dir" ] || return 0
  if [ "${SC_KEEP:-}" = 1 ]; then echo "# kept $dir"; else rm -rf "$dir"; fi
}
dir=
trap cluster_cleanup EXIT
dir=$(mktemp -d /tmp/sc-cluster-XXXXXX)

# cluster_up: every host's namespace, its veth on br0, its address, the routes to
# the nodes' Cell ranges; forwarding on in the nodes.  An empty nftables chain in
# the bridge's namespace waits for partition/split.
cluster_up() {
  local h n B="ip -n $tag-br"
  ip netns add $tag-br || return 1
  $B link add br0 type bridge && $B link set br0 up && $B link set lo up || return 1
  for h in "${CL_HOSTS[@]}"; do
    ip netns add $tag-$h || return 1
    ip link add v$h netns $tag-br type veth peer name eth0 netns $tag-$h || return 1
    $B link set v$h master br0 up
    ip -n $tag-$h addr add "${IP[$h]}/24" dev eth0
    ip -n $tag-$h link set eth0 up
    ip -n $tag-$h link set lo up
    for n in 1 2 3 4; do
      [ "$h" = n$n ] || ip -n $tag-$h route add $CL_NET.$n.0/24 via "${IP[n$n]}"
    done
  done
  for n in 1 2 3 4; do on n$n sysctl -qw net.ipv4.ip_forward=1 || return 1; done
  on br nft -f - <<'EOF' || return 1
table bridge sc_cut {
  chain cut { type filter hook forward priority 0; policy accept; }
}
EOF
}

# ---- the daemons: one launch line per binary --------------------------------------

# start_controller N: sctld cN in its namespace (PID[cN]); logs in $dir/cN.log.
start_controller() {
  local h=c$1 tls=()
  mkdir -p "$dir/$h"
  if [ "$CL_TLS" = 1 ]; then
    # a controller's first start after c1's: the cluster CA copied in first
    if [ "$h" != c1 ] && [ ! -f "$dir/$h/pki/ca.key" ]; then
      wait_for 10 test -s "$dir/c1/pki/ca.key" || { echo "# no CA from c1" >&2; return 1; }
      install -d -m 700 "$dir/$h/pki"
      cp -p "$dir/c1/pki/ca.crt" "$dir/c1/pki/ca.key" "$dir/$h/pki/"
    fi
    tls=(--tls-dir "$dir/$h/pki" --join-listen "${IP[$h]}:$CL_PORT_JOIN")
  fi
  spawn $h "$SCTLD" --name $h --data-dir "$dir/$h/data" --listen "${IP[$h]}:$CL_PORT_API" \
    --peer-listen "${IP[$h]}:$CL_PORT_PEER" --initial-cluster "$CL_IC" "${tls[@]}" \
    >>"$dir/$h.log" 2>&1 3>&- &
  PID[$h]=$!
}

# cl_token: a reusable bootstrap token, made once through any controller (CL_TOKEN);
# cl_join_args: slet's --join flags: every controller's join listener, that
# token, the CA hash from c1's log
cl_token() {
  local n
  [ "$CL_TLS" = 1 ] && [ -z "$CL_TOKEN" ] || return 0
  for _ in $(seq 50); do # a leader just elected may not be known everywhere yet
    for n in 1 2 3; do
      CL_TOKEN=$(sctl_c $n token create --uses 0 --ttl 2h --description "cluster harness" 2>/dev/null) &&
        return 0
    done
    sleep 0.2
  done
  echo "# no bootstrap token could be made" >&2
  return 1
}
cl_join_args() {
  [ "$CL_TLS" = 1 ] || return 0
  local hash
  hash=$(grep -o 'ca_hash=sha256:[0-9a-f]*' "$dir/c1.log" | head -1 | cut -d= -f2)
  echo "--join https://${IP[c1]}:$CL_PORT_JOIN,https://${IP[c2]}:$CL_PORT_JOIN,https://${IP[c3]}:$CL_PORT_JOIN"
  echo "--token $CL_TOKEN --ca-hash $hash"
}

# start_node N: slet nN in its namespace, talking to ${NODE_SERVER[nN]} (c1 if
# unset; several: comma-separated); Cells on its bridge cbrN in 10.79.N.0/24,
# images from its own store (node_image imports the test image there), cgroups
# under TAG-nN.
start_node() {
  local h=n$1
  mkdir -p "$dir/$h"
  local join
  cl_token # here, not in $(...): the token is made once
  join=$(cl_join_args)
  # shellcheck disable=SC2086
  spawn $h "$SLET" agent --server "$(urls "${NODE_SERVER[$h]:-c1}")" --name $h $join \
    --data-dir "$dir/$h/data" --store "$dir/$h/store" --trust "$dir/img/trust" \
    --address "${IP[$h]}" --listen "${IP[$h]}:$CL_PORT_LOGS" --cell-net bridge \
    --bridge cbr$1 --cell-range $CL_NET.$1.0/24 --cgroup-parent $tag-$h --grace 2 \
    >>"$dir/$h.log" 2>&1 3>&- &
  PID[$h]=$!
}

# start_lb: sclb on the lb host, serving on its address, talking to $LB_SERVER.
start_lb() {
  mkdir -p "$dir/lb"
  local tls=()
  [ "$CL_TLS" = 1 ] && tls=(--ca "$(cl_pki)/ca.crt" --cert "$(cl_pki)/admin.crt" --key "$(cl_pki)/admin.key")
  spawn lb "$SCLB" --server "$(url "${LB_SERVER:-c1}")" "${tls[@]}" --dir "$dir/lb/state" \
    --listen-addr "${IP[lb]}" >>"$dir/lb.log" 2>&1 3>&- &
  PID[lb]=$!
}

# sctl_c N ARGS...: sctl on the client host against controller cN.
sctl_c() {
  local n=$1
  shift
  # shellcheck disable=SC2046
  on client "$SCTL" --server "$(url c$n)" $(cl_sctl_tls) "$@"
}
# api HOST PATH [curl args]: a request from the client host (or from HOST's own
# namespace when HOST is cut off: api_from).
# shellcheck disable=SC2046
api() { on client curl -s -m 4 $(cl_curl_tls) "$(url "$1")$2" "${@:3}"; }
# shellcheck disable=SC2046
api_from() { on "$1" curl -s -m 4 $(cl_curl_tls) "$(url "$2")$3" "${@:4}"; }

# node_image: builds the test image once (hello_image, sctld_lib.bash) and
# imports it into each node's store; sets IMG to its blake3 id.
node_image() {
  local n
  IMG=$(hello_image "$dir/img") || return 1
  for n in 1 2 3 4; do
    "$SLET" image import "$dir/img/hello.pack" --store "$dir/n$n/store" --trust "$dir/img/trust" \
      >/dev/null || return 1
  done
}

# ---- kill, stop, restart -----------------------------------------------------------

start_host() {
  case $1 in
  c?) start_controller "${1#c}" ;;
  n?) start_node "${1#n}" ;;
  lb) start_lb ;;
  esac
}
# stop HOST: SIGTERM to its daemon, SIGKILL after 10 s.
stop() {
  local pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  wait_for 10 dead "$pid" || kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PID[$1]"
}
# kill9 HOST: SIGKILL to its daemon, reaped.
kill9() {
  local pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PID[$1]"
}
# restart HOST: stop (graceful) then start with the same launch line and data.
restart() { stop "$1" && start_host "$1"; }
# kill_node N: the node host dies: SIGKILL to slet and to every process of its
# Cells (the kernel would kill them with slet anyway: PR_SET_PDEATHSIG).
kill_node() {
  kill9 n$1
  kill_cells "$1"
}

# ---- cuts and latency ------------------------------------------------------------

# partition HOST: HOST is cut off from every other host (both directions); its
# daemons keep running, their packets are dropped at the bridge.
partition() { on br nft add rule bridge sc_cut cut iifname "v$1" drop \; add rule bridge sc_cut cut oifname "v$1" drop; }
# split "A B ..." "C D ...": hosts of one group reach each other but not those of
# the other group (hosts in neither group reach both).
split() {
  local a b
  a=$(printf '"v%s", ' $1)
  b=$(printf '"v%s", ' $2)
  on br nft add rule bridge sc_cut cut iifname "{ ${a%, } }" oifname "{ ${b%, } }" drop \; \
    add rule bridge sc_cut cut iifname "{ ${b%, } }" oifname "{ ${a%, } }" drop
}
# heal: every cut removed (latency stays).
heal() { on br nft flush chain bridge sc_cut cut; }
# latency HOST MS: every packet HOST sends waits MS ms (tc netem on its eth0);
# 0 removes it.  Returns 2 when the kernel has no netem (CONFIG_NET_SCH_NETEM).
latency() {
  on "$1" tc qdisc del dev eth0 root 2>/dev/null
  [ "$2" = 0 ] && return 0
  on "$1" tc qdisc add dev eth0 root netem delay "${2}ms" 2>/dev/null || return 2
}
# reach FROM TO: FROM's connection to TO's API or logs port succeeds in 1 s.
reach() {
  local port=$CL_PORT_API who=admin
  [[ $2 == n? ]] && port=$CL_PORT_LOGS who=controller
  # shellcheck disable=SC2046
  on "$1" curl -s -o /dev/null --connect-timeout 1 -m 2 $(cl_curl_tls $who) "$CL_SCHEME://${IP[$2]}:$port/healthz"
}

# ---- the controllers' view ---------------------------------------------------------

# leader N...: the leader's name as the first of these controllers that answers
# sees it (empty if none knows one).
leader() {
  local n l
  for n in "$@"; do
    l=$(api c$n /v1/cluster | jq -r '.members[] | select(.leader) | .name' 2>/dev/null)
    [ -n "$l" ] && { echo "$l"; return 0; }
  done
  return 1
}
# wait_leader N...: waits up to 10 s for a leader among them; prints its number.
wait_leader() {
  local l end=$(($(ms) + 10000))
  while [ "$(ms)" -lt "$end" ]; do
    l=$(leader "$@") && { echo "${l#c}"; return 0; }
    sleep 0.1
  done
  return 1
}
# revision HOST: the store revision HOST's controller has applied (a local read,
# so a follower answers with what it has), from its X-Sc-Revision header.
revision() {
  # shellcheck disable=SC2046
  on "$1" curl -s -m 2 -D - -o /dev/null $(cl_curl_tls) "$(url "$1")/v1/kv/sc-probe?serializable=1" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-sc-revision" { print $2 }'
}
