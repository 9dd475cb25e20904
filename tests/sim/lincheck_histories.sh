#!/usr/bin/env bash
# lincheck_histories.sh: shows that `lincheck` (the simulator's linearizability
# checker over history files, lincheck_main.c) gives known verdicts, so that a
# "linearizable" from the system tests means something:
#
#   1. every histories/*.hist file says in a comment what lincheck must answer:
#      "# Verdict: linearizable" (exit 0), "# Verdict: NOT ..." (exit 1) or
#      "# Verdict: bad file" (exit 2); "# Core: L1 L2 ..." names the lines the
#      shrunk explanation must list, exactly;
#   2. a generated history (5 clients, 3 keys, 3,000 operations, some with an
#      unknown outcome), linearizable by construction (each operation takes
#      effect at a random point inside its interval, an unknown one at a random
#      later point or never), must pass; the same history plus one read, after
#      everything returned, of a value that was certainly overwritten must fail
#      and name that read.
#
# Run: tests/sim/lincheck_histories.sh BUILD/tests/sim/lincheck tests/sim/histories [SEED]
set -uo pipefail
LINCHECK=${1:?usage: lincheck_histories.sh PATH/TO/lincheck HISTORY_DIR [SEED]}
DIR=${2:?usage: lincheck_histories.sh PATH/TO/lincheck HISTORY_DIR [SEED]}
SEED=${3:-7}
tmp=$(mktemp -d /tmp/sc-lincheck-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0
result() { # ok?, name
  n=$((n + 1))
  if [ "$1" = 1 ]; then echo "ok $n $2"; else echo "not ok $n $2"; fails=$((fails + 1)); fi
}

for f in "$DIR"/*.hist; do
  name=$(basename "$f")
  verdict=$(sed -n 's/^# Verdict: *//p' "$f" | head -1)
  case "$verdict" in
    linearizable*) want=0 ;;
    NOT*) want=1 ;;
    "bad file"*) want=2 ;;
    *) result 0 "$name: no '# Verdict:' line"; continue ;;
  esac
  "$LINCHECK" -q "$f" >"$tmp/out" 2>"$tmp/err"
  got=$?
  core=$(sed -n 's/^# Core: *//p' "$f" | head -1)
  have=$(sed -n 's/^  line \([0-9]*\):.*/\1/p' "$tmp/out" | sort -n | tr '\n' ' ' | sed 's/ $//')
  if [ "$got" != "$want" ]; then
    result 0 "$name: exit $got, want $want"
    sed 's/^/# /' "$tmp/out" "$tmp/err"
  elif [ -n "$core" ] && [ "$have" != "$(echo "$core" | tr ' ' '\n' | sort -n | tr '\n' ' ' | sed 's/ $//')" ]; then
    result 0 "$name: explanation lists lines '$have', want '$core'"
    sed 's/^/# /' "$tmp/out"
  else
    result 1 "$name: exit $got ($verdict)${core:+, explanation lines $core}"
  fi
done

# The generator: awk with a fixed seed.  Times are integers; each client's
# operations follow one another; "point" is when the operation takes effect.
awk -v seed="$SEED" -v nops=3000 'BEGIN {
  srand(seed)
  for (c = 1; c <= 5; c++) clock[c] = int(rand() * 100)
  for (i = 0; i < nops; i++) {
    c = 1 + int(rand() * 5); k = "k" (1 + int(rand() * 3))
    call = clock[c] + 1 + int(rand() * 50); dur = 1 + int(rand() * 200)
    ret = call + dur; clock[c] = ret
    r = rand()
    kind = r < 0.45 ? "put" : "get"
    unknown = kind == "put" && rand() < 0.05
    point = call + int(rand() * dur)
    if (unknown) point = rand() < 0.5 ? -1 : call + int(rand() * 2000)
    # id call ret kind key unknown point client
    print i, call, ret, kind, k, unknown, point, "c" c
  }
}' >"$tmp/raw"
# Apply in point order (never-applied unknown puts drop out), compute results.
awk '$7 >= 0' "$tmp/raw" | sort -k7,7n -k1,1n | awk '{
  id = $1; kind = $4; key = $5
  if (kind == "put") { val[key] = "v" id } else { res[id] = (key in val) ? val[key] : "-" }
} END { for (id in res) print id, res[id] }' | sort -n >"$tmp/results"
awk 'NR == FNR { res[$1] = $2; next } {
  id = $1; call = $2; ret = $3; kind = $4; key = $5; unknown = $6; client = $8
  if (kind == "put") print client, call, (unknown ? "-" : ret), "put", key, "v" id, (unknown ? "unknown" : "ok")
  else print client, call, ret, "get", key, "ok", res[id]
}' "$tmp/results" "$tmp/raw" >"$tmp/gen.hist"
t0=$(date +%s%N)
"$LINCHECK" "$tmp/gen.hist" >"$tmp/out" 2>"$tmp/err"
got=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$got" = 0 ]; then
  result 1 "generated history, linearizable by construction: passes ($ms ms; $(cat "$tmp/err"))"
else
  result 0 "generated history, linearizable by construction: exit $got"
  head -20 "$tmp/out" | sed 's/^/# /'
fi
# The first acknowledged put of k1, and an acknowledged put of k1 invoked after it
# returned: a read after everything returned cannot see the first one's value.
read -r first fret < <(awk '$4 == "put" && $5 == "k1" && $7 == "ok" { print $6, $3; exit }' "$tmp/gen.hist")
later=$(awk -v r="$fret" '$4 == "put" && $5 == "k1" && $7 == "ok" && $2 > r { print $6; exit }' "$tmp/gen.hist")
end=$(awk '{ t = ($3 == "-" ? $2 : $3); if (t > m) m = t } END { print m + 1000000 }' "$tmp/gen.hist")
if [ -n "$first" ] && [ -n "$later" ]; then
  cp "$tmp/gen.hist" "$tmp/bad.hist"
  echo "c9 $end $((end + 10)) get k1 ok $first" >>"$tmp/bad.hist"
  badline=$(wc -l <"$tmp/bad.hist")
  "$LINCHECK" -q "$tmp/bad.hist" >"$tmp/out" 2>&1
  got=$?
  if [ "$got" = 1 ] && grep -q "^  line $badline: c9 " "$tmp/out"; then
    result 1 "generated history plus a read of overwritten $first: not linearizable, the read is named ($(grep -c '^  line' "$tmp/out") lines in the explanation)"
  else
    result 0 "generated history plus a read of overwritten $first: exit $got"
    head -20 "$tmp/out" | sed 's/^/# /'
  fi
else
  result 0 "generator made no overwritten put on k1 (change the seed)"
fi
echo "1..$n"
[ "$fails" = 0 ]
