#!/usr/bin/env bats
# api_doc.bats: docs/api.md is true, and the API's errors are the documented ones.
#
# The first test extracts every fenced ```sh block of docs/api.md, in order, and
# runs each curl command (port 7400 replaced by this test's port) against a fresh
# sctld: the command must exit 0 (28 for the `--max-time` watch example, which is
# how curl ends a stream on purpose), the HTTP status must be 2xx, every response
# must carry X-Sc-Revision, and where the doc shows an answer (`# {...}` lines
# right under the command) the real answer must have the same shape and values:
# the same top-level keys, every key path the doc shows, and every value it
# shows (revisions, counts; not the lease id the server picks).  The other tests check the
# error statuses and JSON bodies, limits, a query with a bad escape, and that
# SIGTERM ends sctld with exit 0 while writes are in flight, losing none that was
# acknowledged.
#
# Run: meson test -C BUILD api_doc --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SC_FREEPORT=BUILD/tests/system/freeport \
#   SC_SRCDIR=$PWD bats tests/system/api_doc.bats
# SC_SIGTERM_WRITERS=32 makes the shutdown test harder.

load sctld_lib

setup_file() {
  : "${SCTLD:?SCTLD must name the sctld binary}"
  : "${SC_FREEPORT:?SC_FREEPORT must name tests/system/freeport}"
  : "${SC_SRCDIR:?SC_SRCDIR must be the source root}"
  export MAIN_DIR="$BATS_FILE_TMPDIR/main"
  start_sctld "$MAIN_DIR"
  export PORT SCTLD_PID
}

teardown_file() {
  [ -n "${SCTLD_PID:-}" ] && stop_sctld "$SCTLD_PID"
}

# req METHOD PATH [curl args...]: sets CODE and BODY.
req() {
  local m=$1 p=$2 out
  shift 2
  out=$(curl -s -X "$m" -w '\n%{http_code}' "http://127.0.0.1:$PORT$p" "$@")
  CODE=${out##*$'\n'}
  BODY=${out%$'\n'*}
}

# expect_error STATUS CODE: the last answer was STATUS with a JSON error body of
# that code, with a non-empty message.
expect_error() {
  if [ "$CODE" != "$1" ]; then
    echo "HTTP $CODE, want $1: $BODY" >&2
    return 1
  fi
  echo "$BODY" | jq -e --arg c "$2" \
    '.error.code == $c and (.error.message | type == "string" and length > 0)' >/dev/null || {
    echo "error body does not match code $2: $BODY" >&2
    return 1
  }
}

# Splits the sh blocks of docs/api.md into cmd.N (a command, perhaps several
# lines) and exp.N (the `# ` lines right under it, without the `# `).
split_examples() {
  awk -v dir="$1" '
    function flush() { if (n > 0 && cmd != "") { print cmd > (dir "/cmd." n); close(dir "/cmd." n);
                        printf "%s", ex > (dir "/ex." n); close(dir "/ex." n) } cmd = ""; ex = ""; state = "" }
    /^```sh$/ { inb = 1; next }
    inb && /^```$/ { flush(); inb = 0; next }
    !inb { next }
    /^curl / { flush(); n++; cmd = $0; state = "cmd"; next }
    state == "cmd" && /^# / { state = "ex"; ex = substr($0, 3) "\n"; next }
    state == "cmd" && /^$/ { flush(); next }
    state == "cmd" { cmd = cmd "\n" $0; next }
    state == "ex" && /^# / { ex = ex substr($0, 3) "\n"; next }
    state == "ex" { flush(); next }
  ' "$SC_SRCDIR/docs/api.md"
}

# The key paths of a JSON document (array indexes as 0), one per line.
key_paths() {
  jq -c '[paths | map(if type == "number" then 0 else . end)] | unique | .[]'
}

# Its scalar leaves as [path, value], except those that differ from run to run
# (a lease id the server chose, a remaining TTL).
leaf_values() {
  jq -c '[paths(scalars) as $p | select(($p[-1] | tostring) | IN("id", "remaining") | not)
          | [($p | map(if type == "number" then 0 else . end)), getpath($p)]] | unique | .[]'
}

@test "every curl example in docs/api.md runs as written and answers in the documented shape" {
  local dir="$BATS_TEST_TMPDIR/ex" i n=0 failures=0
  mkdir -p "$dir"
  split_examples "$dir"
  for f in "$dir"/cmd.*; do n=$((n + 1)); done
  [ "$n" -ge 10 ] || { echo "only $n examples found in docs/api.md" >&2; return 1; }
  for ((i = 1; i <= n; i++)); do
    local cmd exp hdr="$dir/hdr.$i" out rc status
    cmd=$(sed "s/127\.0\.0\.1:7400/127.0.0.1:$PORT/g" "$dir/cmd.$i")
    # curl as a function that also dumps the response headers, so the
    # command itself runs unchanged (pipes included).
    out=$(HDR="$hdr" bash -c 'curl() { command curl -D "$HDR" "$@"; }; '"$cmd" 2>&1) && rc=0 || rc=$?
    status=$(awk 'NR == 1 { print $2 }' "$hdr" 2>/dev/null)
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 28 ] && [[ $cmd == *--max-time* ]]; }; then
      echo "example $i exited $rc: $cmd" >&2; failures=$((failures + 1)); continue
    fi
    if [[ $status != 2?? ]]; then
      echo "example $i answered HTTP ${status:-none}: $cmd -> $out" >&2; failures=$((failures + 1)); continue
    fi
    if ! grep -qi '^X-Sc-Revision: [0-9]' "$hdr"; then
      echo "example $i: no X-Sc-Revision header: $cmd" >&2; failures=$((failures + 1))
    fi
    local k=0 want got
    while IFS= read -r want; do
      k=$((k + 1))
      got=$(printf '%s\n' "$out" | sed -n "${k}p")
      if [[ $want != "{"* ]]; then
        # e.g. `sc_store_revision 4`: the same metric line.
        if [ "$got" != "$want" ]; then
          echo "example $i line $k: got '$got', doc shows '$want'" >&2; failures=$((failures + 1))
        fi
        continue
      fi
      local wantj gotkeys wantkeys missing
      wantj=$(printf '%s' "$want" | sed -e 's/,\.\.\.//g' -e 's/\.\.\.//g')
      if ! echo "$got" | jq -e . >/dev/null 2>&1; then
        echo "example $i line $k: answer is not JSON: $got" >&2; failures=$((failures + 1)); continue
      fi
      echo "$wantj" | jq -e . >/dev/null || { echo "doc example $i shows bad JSON: $want" >&2; failures=$((failures + 1)); continue; }
      gotkeys=$(echo "$got" | jq -c 'keys')
      wantkeys=$(echo "$wantj" | jq -c 'keys')
      if [ "$gotkeys" != "$wantkeys" ]; then
        echo "example $i line $k: top-level keys $gotkeys, doc shows $wantkeys ($cmd)" >&2
        failures=$((failures + 1))
      fi
      missing=$(comm -23 <(echo "$wantj" | key_paths | sort) <(echo "$got" | key_paths | sort))
      if [ -n "$missing" ]; then
        echo "example $i line $k: answer lacks $missing (got $got)" >&2; failures=$((failures + 1))
      fi
      # The values the doc shows (revisions, counts...) are the real ones too.
      missing=$(comm -23 <(echo "$wantj" | leaf_values | sort) <(echo "$got" | leaf_values | sort))
      if [ -n "$missing" ]; then
        echo "example $i line $k: doc shows $missing, answer is $got" >&2; failures=$((failures + 1))
      fi
    done <"$dir/ex.$i"
  done
  echo "# $n examples checked, $failures failures" >&3
  [ "$failures" -eq 0 ]
}

@test "a body that is not JSON: 400 invalid_argument naming the field, line and column" {
  req POST /v1/txn -d '{"compare": ['
  expect_error 400 invalid_argument
  echo "$BODY" | jq -e '.error.field | type == "string" and length > 0' >/dev/null
  echo "$BODY" | jq -e '.error.message | test("line [0-9]+ column [0-9]+")' >/dev/null
  req POST /v1/leases -d '{"ttl": "ten"}'
  expect_error 400 invalid_argument
  echo "$BODY" | jq -e '.error.field == "ttl"' >/dev/null
  req POST /v1/txn -d '{"success": [{"put": {"key": "a", "valeu": "x"}}]}'
  expect_error 400 invalid_argument
}

@test "unknown path: 404 JSON; wrong method: 405 method_not_allowed" {
  req GET /v1/nope
  [ "$CODE" = 404 ]
  echo "$BODY" | jq -e '.error.code | type == "string"' >/dev/null
  req POST /v1/kv/x
  expect_error 405 method_not_allowed
  req GET /v1/txn
  expect_error 405 method_not_allowed
  req PUT /v1/leases
  expect_error 405 method_not_allowed
}

@test "a method evhttp does not know by default (PATCH) is 405 JSON too, not 501 HTML" {
  req PATCH /v1/kv/x
  expect_error 405 method_not_allowed
}

@test "missing key: 404 not_found, with the revision" {
  req GET /v1/kv/no-such-key-anywhere
  expect_error 404 not_found
  curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/v1/kv/no-such-key-anywhere" | grep -qi '^X-Sc-Revision: [0-9]'
}

@test "value limit: 1.5 MiB is accepted, one byte more is 413 value_too_large" {
  local f="$BATS_TEST_TMPDIR/v"
  head -c 1572864 /dev/zero | tr '\0' 'v' >"$f"
  req PUT /v1/kv/big --data-binary "@$f"
  [ "$CODE" = 200 ] || { echo "at the limit: HTTP $CODE $BODY" >&2; return 1; }
  printf 'v' >>"$f"
  req PUT /v1/kv/big --data-binary "@$f"
  expect_error 413 value_too_large
  # the old value is untouched
  [ "$(curl -s "http://127.0.0.1:$PORT/v1/kv/big" | jq -r '.kv.value | length')" = 1572864 ]
}

@test "transaction limit: 128 operations pass, 129 are 400 too_many_operations" {
  local ok bad
  ok=$(jq -nc '{success: [range(128) | {put: {key: "t\(.)", value: "x"}}]}')
  bad=$(jq -nc '{success: [range(129) | {put: {key: "t\(.)", value: "x"}}]}')
  req POST /v1/txn -d "$ok"
  [ "$CODE" = 200 ] || { echo "128 ops: HTTP $CODE $BODY" >&2; return 1; }
  req POST /v1/txn -d "$bad"
  expect_error 400 too_many_operations
}

@test "a read or watch below the compacted revision: 410 compacted" {
  local rev
  req PUT /v1/kv/cmp/a --data-binary 1
  req PUT /v1/kv/cmp/a --data-binary 2
  rev=$(curl -s "http://127.0.0.1:$PORT/healthz" | jq .revision)
  req POST /v1/compact -d "{\"revision\": $rev}"
  [ "$CODE" = 200 ] || { echo "compact: HTTP $CODE $BODY" >&2; return 1; }
  req GET "/v1/kv?prefix=cmp/&watch=1&rev=1" --max-time 2
  expect_error 410 compacted
  req GET "/v1/kv/cmp/a?rev=1"
  expect_error 410 compacted
}

@test "a query with a bad percent-escape: 400, and sctld lives on" {
  req GET '/v1/kv?prefix=%zz'
  expect_error 400 invalid_argument
  req GET '/v1/kv?prefix=a&rev=%'
  expect_error 400 invalid_argument
  req GET /healthz
  [ "$CODE" = 200 ]
}

@test "SIGTERM: sctld exits 0 promptly; every acknowledged write survives, the rest fail cleanly" {
  local dir="$BATS_TEST_TMPDIR/term" w writers=${SC_SIGTERM_WRITERS:-8} pids=()
  start_sctld "$dir"
  local port=$PORT pid=$SCTLD_PID
  for ((w = 0; w < writers; w++)); do
    (
      for ((i = 0; i < 100000; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "v$w-$i" \
          "http://127.0.0.1:$port/v1/kv/term/$w/$i")
        if [ "$code" = 200 ]; then echo "$w $i" >>"$dir/acked.$w"; else
          echo "$code" >"$dir/end.$w"; break; fi
      done
    ) 3>&- &
    pids+=($!)
  done
  sleep 1
  local t0=$SECONDS
  stop_sctld "$pid"
  [ "$STOP_STATUS" = 0 ] || { echo "sctld after SIGTERM: $STOP_STATUS; log:" >&2; tail "$dir/sctld.log" >&2; return 1; }
  [ $((SECONDS - t0)) -le 5 ] || { echo "SIGTERM took $((SECONDS - t0)) s" >&2; return 1; }
  for p in "${pids[@]}"; do wait "$p" || true; done
  # A write that did not get 200 must have failed cleanly: 503 or no answer.
  cat "$dir"/end.* | while read -r code; do
    [ "$code" = 503 ] || [ "$code" = 000 ] || { echo "a writer ended with HTTP $code" >&2; exit 1; }
  done
  cat "$dir"/acked.* >"$dir/acked"
  [ -s "$dir/acked" ]
  PORT= start_sctld "$dir"
  curl -s "http://127.0.0.1:$PORT/v1/kv?prefix=term/" |
    jq -r '.kvs[] | "\(.key) \(.value)"' >"$dir/present"
  local n missing
  n=$(wc -l <"$dir/acked")
  missing=$(awk 'NR == FNR { have[$1 " " $2] = 1; next }
                 !(("term/" $1 "/" $2 " v" $1 "-" $2) in have) { print "term/" $1 "/" $2 }' \
    "$dir/present" "$dir/acked")
  [ -z "$missing" ] || echo "acknowledged but missing or wrong after restart: $missing" >&2
  stop_sctld "$SCTLD_PID"
  echo "# $n acknowledged writes before SIGTERM, all present after restart" >&3
  [ -z "$missing" ]
  [ "$STOP_STATUS" = 0 ]
}

@test "a quiet watch outlives the idle timeout and gets progress lines; an idle connection does not" {
  local dir="$BATS_TEST_TMPDIR/quiet"
  start_sctld "$dir" --http-idle-ms 1000 --watch-progress-ms 1500
  local port=$PORT pid=$SCTLD_PID
  curl -s -X PUT --data-binary v "http://127.0.0.1:$port/v1/kv/q/a" >/dev/null
  # The watch stays open 4 s (curl's --max-time ends it: exit 28) with the server's
  # idle timeout at 1 s and the first progress line due only after 1.5 s; it hears
  # the event, then progress lines at the revision.
  run curl -sN --max-time 4 "http://127.0.0.1:$port/v1/kv?prefix=q/&watch=1&rev=1"
  local st=$status out=$output
  # A connection that says nothing is closed by the server after 1 s: reading it
  # after 2 s meets end-of-file at once (an open one would block until timeout).
  run bash -c "exec 5<>/dev/tcp/127.0.0.1/$port; sleep 2; timeout 2 cat <&5"
  local idle_st=$status
  stop_sctld "$pid"
  echo "$out" | head -3 >&2
  [ "$st" = 28 ]
  [ "$(echo "$out" | sed -n 2p | jq -r .kv.key)" = q/a ]
  local n
  n=$(echo "$out" | jq -c 'select(.progress == true and .revision == 2)' | wc -l)
  [ "$n" -ge 2 ] || { echo "only $n progress lines at revision 2" >&2; return 1; }
  [ "$(echo "$out" | jq -c 'select(.progress != true)' | wc -l)" = 2 ]
  [ "$idle_st" = 0 ] || { echo "an idle connection stayed open (status $idle_st)" >&2; return 1; }
}
