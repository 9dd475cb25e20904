# netns_lib.sh: sourced by the Raft system tests (raft_netns.sh, raft_members.sh).
# Sets up N members, each in its own network namespace on a bridge with no uplink
# (NET.1 ... NET.N, the client at NET.100 inside the bridge's namespace), and
# gives the helpers both tests use.  Everything it creates (namespaces, links,
# processes by PID in PID[], temp dir) is removed on exit; the caller may set
# EXTRA_CLEANUP to a command run first.  Skips (exit 77) without root, ip, curl,
# jq or network namespaces.
#
# It also runs the linearizability clients (lin_start / lin_stop below): several
# concurrent clients doing puts and linearizable gets on a few keys through the
# members, each operation recorded with its call and return times and outcome,
# and the merged history checked by `lincheck` (tests/sim/lincheck_main.c, the
# simulator's checker; format in docs/sim.md).
#
# Use: NET=10.77.0 NMEMBERS=3 TAG=scr LINCHECK=PATH source netns_lib.sh
[ "$(id -u)" = 0 ] || { echo "skip: not root"; exit 77; }
command -v ip >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null || {
  echo "skip: needs ip, curl and jq"; exit 77; }
tag=$TAG$$
ip netns add ${tag}b 2>/dev/null || { echo "skip: cannot create network namespaces"; exit 77; }
dir=$(mktemp -d /tmp/sc-$TAG-XXXXXX)
declare -A PID
LPID=()
EXTRA_CLEANUP=${EXTRA_CLEANUP:-}
fail() {
  echo "FAIL: $*"
  for n in $(seq 1 "$NMEMBERS"); do echo "--- c$n log"; tail -15 "$dir/c$n.log"; done
  exit 1
}
cleanup() {
  [ -n "$EXTRA_CLEANUP" ] && eval "$EXTRA_CLEANUP"
  for p in "${LPID[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
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

# ---- linearizability clients -------------------------------------------------
# lin_client ID: one client, one operation at a time until $dir/lin.stop exists:
# a put of a unique value (ID.SEQ) or a linearizable get, on lin/k0..k2, through
# a random member of $dir/lin.targets.  Each operation becomes one line of
# $dir/hist.ID: "ID CALL RET put|get KEY ... ok|fail|unknown ..." (ns, wall
# clock read by bash without a fork).  Outcomes: 200 (a get's 404 not_found:
# "-") is ok; another 4xx, or no connection at all, is fail (not applied);
# anything else (503, a timeout or reset after the request went out) is
# unknown.  curl runs in the background and is waited for, so that a TERM ends
# it by its PID.  SC_LIN_GET_QUERY='?serializable=1' makes the gets local reads
# (not linearizable): a way to see the check fail (docs/sim.md).
lin_client() {
  local id=$1 seq=0 cpid= t0 t1 rc code tc body k op v n url line
  local -a targets
  trap '[ -n "$cpid" ] && kill "$cpid" 2>/dev/null; exit 0' TERM
  while [ ! -e "$dir/lin.stop" ]; do
    read -r -a targets <"$dir/lin.targets"
    n=${targets[RANDOM % ${#targets[@]}]}
    k=lin/k$((RANDOM % 3))
    url="http://$NET.$n:7400/v1/kv/$k"
    op=get
    (( RANDOM % 2 )) && { op=put; seq=$((seq + 1)); v=$id.$seq; }
    : >"$dir/lin.body.$id"
    t0=${EPOCHREALTIME/./}
    if [ $op = put ]; then
      $B curl -s -m 4 --connect-timeout 1 -o "$dir/lin.body.$id" -w '%{http_code} %{time_connect}' \
        -X PUT --data-binary "$v" "$url" >"$dir/lin.w.$id" 2>/dev/null &
    else
      $B curl -s -m 4 --connect-timeout 1 -o "$dir/lin.body.$id" -w '%{http_code} %{time_connect}' \
        "$url${SC_LIN_GET_QUERY:-}" >"$dir/lin.w.$id" 2>/dev/null &
    fi
    cpid=$!
    wait "$cpid"; rc=$?
    cpid=
    t1=${EPOCHREALTIME/./}
    code=000 tc=0 body=
    read -r code tc <"$dir/lin.w.$id"
    IFS= read -r body <"$dir/lin.body.$id"
    line="$id ${t0}000 ${t1}000 $op $k"
    [ $op = put ] && line+=" $v"
    if [ "$rc" = 0 ] && [ "$code" = 200 ]; then
      if [ $op = put ] && [[ $body =~ \"revision\":([0-9]+) ]]; then
        line+=" ok ${BASH_REMATCH[1]}"
      elif [ $op = get ] && [[ $body =~ \"value\":\"([^\"]*)\".*\"mod_revision\":([0-9]+) ]]; then
        line+=" ok ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
      else
        line+=" unknown" # 200 with a body we cannot read: claim nothing
      fi
    elif [ "$rc" = 0 ] && [ $op = get ] && [ "$code" = 404 ] && [[ $body == *not_found* ]]; then
      line+=" ok -"
    elif [ "$rc" = 0 ] && [[ $code == 4* ]]; then
      line+=" fail"
    elif [ "$rc" = 7 ] || { [ "$code" = 000 ] && [[ $tc =~ ^0(\.0*)?$ ]]; }; then
      line+=" fail" # never connected: the request did not go out
    else
      line+=" unknown"
    fi
    # paced, so that the clients leave CPU to the members (2 cores in CI) and a
    # member that refuses is not hammered
    if [[ $line == *" ok"* ]]; then sleep 0.03; else sleep 0.1; fi
    echo "$line # http=$code curl=$rc" >>"$dir/hist.$id"
  done
}
# lin_start NCLIENTS MEMBER...: starts the clients against those members.
lin_start() {
  local c=$1; shift
  echo "$*" >"$dir/lin.targets"
  rm -f "$dir/lin.stop"
  for i in $(seq 1 "$c"); do lin_client "w$i" & LPID+=($!); done
}
# lin_targets MEMBER...: the members the clients talk to from now on.
lin_targets() { echo "$*" >"$dir/lin.targets.new" && mv "$dir/lin.targets.new" "$dir/lin.targets"; }
# lin_note TEXT: a comment in the history (what the test did, when).
lin_note() { echo "# ${EPOCHREALTIME/./}000 $*" >>"$dir/hist.notes"; }
# lin_stop MIN: stops the clients, merges the history into $dir/history, fails
# the test unless it has at least MIN acknowledged puts and MIN gets that read
# a value (so that the check says something) and lincheck calls it
# linearizable.  Sets LIN_SUMMARY to one line saying what was checked.
lin_stop() {
  local min=$1 p out rc puts gets unk
  touch "$dir/lin.stop"
  for p in "${LPID[@]}"; do wait "$p" 2>/dev/null; done
  LPID=()
  cat "$dir"/hist.notes "$dir"/hist.w* 2>/dev/null >"$dir/history"
  puts=$(grep -Ec ' put [^ ]+ [^ ]+ ok ' "$dir/history")
  gets=$(grep -Ec ' get [^ ]+ ok [^- ]' "$dir/history")
  unk=$(grep -c ' unknown #' "$dir/history")
  [ "$puts" -ge "$min" ] && [ "$gets" -ge "$min" ] \
    || fail "client history too thin: $puts acknowledged puts, $gets reads of a value (want $min each)"
  out=$("$LINCHECK" "$dir/history" 2>"$dir/lincheck.err"); rc=$?
  [ "$rc" = 0 ] || { echo "$out" | head -40; cat "$dir/lincheck.err"; echo "--- what the test did (ns)"; cat "$dir/hist.notes";
    fail "lincheck: the client history is not linearizable (exit $rc; SC_KEEP=1 keeps $dir/history)"; }
  LIN_SUMMARY="$(grep -vc '^#' "$dir/history") operations ($puts acknowledged puts, $gets reads of a value, $unk unknown outcome): $out"
  sed 's/^/# /' "$dir/lincheck.err" # lincheck's statistics
}
