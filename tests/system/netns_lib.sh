# netns_lib.sh: sourced by the Raft system tests (raft_netns.sh, raft_members.sh).
# Sets up N members, each in its own network namespace on a bridge with no uplink
# (NET.1 ... NET.N, the client at NET.100 inside the bridge's namespace), and
# gives the helpers both tests use.  Everything it creates (namespaces, links,
# processes by PID in PID[], temp dir) is removed on exit; the caller may set
# EXTRA_CLEANUP to a command run first.  Skips (exit 77) without root, ip, curl,
# jq or network namespaces.
#
# Use: NET=10.77.0 NMEMBERS=3 TAG=scr source netns_lib.sh
[ "$(id -u)" = 0 ] || { echo "skip: not root"; exit 77; }
command -v ip >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null || {
  echo "skip: needs ip, curl and jq"; exit 77; }
tag=$TAG$$
ip netns add ${tag}b 2>/dev/null || { echo "skip: cannot create network namespaces"; exit 77; }
dir=$(mktemp -d /tmp/sc-$TAG-XXXXXX)
declare -A PID
EXTRA_CLEANUP=${EXTRA_CLEANUP:-}
fail() {
  echo "FAIL: $*"
  for n in $(seq 1 "$NMEMBERS"); do echo "--- c$n log"; tail -15 "$dir/c$n.log"; done
  exit 1
}
cleanup() {
  [ -n "$EXTRA_CLEANUP" ] && eval "$EXTRA_CLEANUP"
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null; wait "${PID[$n]}" 2>/dev/null; done
  for n in $(seq 1 "$NMEMBERS"); do ip netns del ${tag}$n 2>/dev/null; done
  ip netns del ${tag}b 2>/dev/null
  [ "${SC_KEEP:-}" = 1 ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

B="ip netns exec ${tag}b"
$B ip link add br0 type bridge && $B ip link set br0 up && $B ip addr add $NET.100/24 dev br0 \
  && $B ip link set lo up || fail "bridge"
for n in $(seq 1 "$NMEMBERS"); do
  ip netns add ${tag}$n || fail "netns"
  ip link add v$tag$n netns ${tag}b type veth peer name eth0 netns ${tag}$n || fail "veth"
  $B ip link set v$tag$n master br0 up
  ip -n ${tag}$n addr add $NET.$n/24 dev eth0
  ip -n ${tag}$n link set eth0 up
  ip -n ${tag}$n link set lo up
done
# start N INITIAL_CLUSTER [flags...]: member cN in its namespace, PID in PID[N]
start() {
  local n=$1 ic=$2; shift 2
  ip netns exec ${tag}$n "$SCTLD" --name c$n --data-dir "$dir/d$n" --listen $NET.$n:7400 \
    --peer-listen $NET.$n:7410 --initial-cluster "$ic" --snapshot-every 50 "$@" \
    >>"$dir/c$n.log" 2>&1 &
  PID[$n]=$!
}
api() { $B curl -s -m 4 "$@"; }
leader_name() {
  api "http://$NET.$1:7400/v1/cluster" | jq -r '.members[] | select(.leader) | .name' 2>/dev/null
}
wait_leader() { # among the given members; prints the leader's number
  for _ in $(seq 1 100); do
    for n in "$@"; do
      l=$(leader_name "$n"); [ -n "$l" ] && { echo "${l#c}"; return 0; }
    done
    sleep 0.1
  done
  return 1
}
