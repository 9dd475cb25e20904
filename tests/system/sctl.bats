#!/usr/bin/env bats
# sctl.bats: the sctl command line against a real sctld: every kv and member verb,
# the output formats, where the server address comes from (flag, environment,
# config file, in that order), the documented exit codes (0 ok, 1 refused, 2 usage,
# 3 unavailable, 4 not found), errors that name what is wrong, and the bash
# completion script.
#
# Run: meson test -C BUILD sctl --print-errorlogs, or by hand:
#   SCTLD=BUILD/src/sctld/sctld SCTL=BUILD/src/sctl/sctl \
#   SC_FREEPORT=BUILD/tests/system/freeport bats tests/system/sctl.bats

load sctld_lib

setup_file() {
  : "${SCTLD:?SCTLD must name the sctld binary}"
  : "${SCTL:?SCTL must name the sctl binary}"
  start_sctld "$BATS_FILE_TMPDIR/main"
  export PORT SCTLD_PID
}

teardown_file() {
  [ -n "${SCTLD_PID:-}" ] && stop_sctld "$SCTLD_PID"
}

setup() {
  export SCTL_SERVER="http://127.0.0.1:$PORT"
  export SCTL_CONFIG=/nonexistent-is-not-used-while-SCTL_SERVER-is-set
}

@test "kv put, get, ls, del round trip with table, wide and json output" {
  run "$SCTL" kv put app/one hello
  [ "$status" -eq 0 ] && [[ "$output" == "OK revision "* ]]
  printf 'from stdin' | "$SCTL" kv put app/two -
  run "$SCTL" kv get app/two
  [ "$status" -eq 0 ] && [ "$output" = "from stdin" ]
  run "$SCTL" kv ls app/
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "KEY      MODIFIED  VALUE" ]
  [[ "${lines[1]}" == "app/one  "*"hello" ]]
  [[ "${lines[2]}" == "app/two  "*"from stdin" ]]
  run "$SCTL" -o wide kv ls app/
  [[ "${lines[0]}" == "KEY      VERSION  CREATED  MODIFIED  LEASE  VALUE" ]]
  run "$SCTL" kv ls app/ -o json
  [ "$(echo "$output" | jq -r '.kvs | map(.key) | join(",")')" = "app/one,app/two" ]
  run "$SCTL" kv del app/one
  [ "$status" -eq 0 ] && [ "$output" = "deleted 1" ]
  run "$SCTL" kv del --prefix app/
  [ "$status" -eq 0 ] && [ "$output" = "deleted 1" ]
  [ "$(curl -s "http://127.0.0.1:$PORT/v1/kv?prefix=app/&count_only=1" | jq .count)" = 0 ]
}

@test "kv get at an older revision, and a key with a slash and a space" {
  run "$SCTL" kv put "odd key/x" v1
  rev1=${output##* }
  "$SCTL" kv put "odd key/x" v2
  run "$SCTL" kv get "odd key/x" --rev "$rev1"
  [ "$status" -eq 0 ] && [ "$output" = v1 ]
  run "$SCTL" kv get "odd key/x" --serializable
  [ "$output" = v2 ]
}

@test "kv watch prints events as they happen" {
  "$SCTL" kv watch w/ >"$BATS_TEST_TMPDIR/watch.out" 2>&1 &
  wpid=$!
  sleep 0.3
  "$SCTL" kv put w/a 1
  "$SCTL" kv del w/a
  for _ in $(seq 1 50); do
    [ "$(wc -l <"$BATS_TEST_TMPDIR/watch.out")" -ge 2 ] && break
    sleep 0.1
  done
  kill "$wpid"
  wait "$wpid" || true
  run cat "$BATS_TEST_TMPDIR/watch.out"
  [[ "${lines[0]}" == "PUT w/a "*" 1" ]]
  [[ "${lines[1]}" == "DELETE w/a "* ]]
}

@test "exit codes: not found 4, refused 1, usage 2, unavailable 3" {
  run "$SCTL" kv get no/such/key
  [ "$status" -eq 4 ] && [[ "$output" == *"not_found"* ]]
  run "$SCTL" kv put k v --lease 12345
  [ "$status" -eq 4 ] && [[ "$output" == *"lease 12345"* ]]
  run "$SCTL" member promote "$(sed -n 1p /dev/null)nobody"
  [ "$status" -eq 4 ] && [[ "$output" == *"member_not_found"* ]]
  run "$SCTL" kv get
  [ "$status" -eq 2 ] && [[ "$output" == *"usage: sctl kv get KEY"* ]]
  run "$SCTL" kv ls --limit many
  [ "$status" -eq 2 ] && [[ "$output" == *"--limit wants a non-negative integer, got 'many'"* ]]
  run "$SCTL" kv get k --bogus
  [ "$status" -eq 2 ] && [[ "$output" == *"unknown option '--bogus'"* ]]
  run "$SCTL" -o xml kv ls
  [ "$status" -eq 2 ]
  run "$SCTL" frobnicate
  [ "$status" -eq 2 ] && [[ "$output" == *"no verb 'frobnicate'"* ]]
  port=$("$SC_FREEPORT")
  run "$SCTL" --server "http://127.0.0.1:$port" kv get k
  [ "$status" -eq 3 ] && [[ "$output" == *"cannot reach http://127.0.0.1:$port"* ]]
  run "$SCTL" --server "ftp://x" kv get k
  [ "$status" -eq 2 ] && [[ "$output" == *"must look like http://HOST:PORT"* ]]
}

@test "the server address: --server over SCTL_SERVER over the config file" {
  cfg=$BATS_TEST_TMPDIR/config
  printf '# a comment\nserver = http://127.0.0.1:%s\n' "$PORT" >"$cfg"
  unset SCTL_SERVER
  SCTL_CONFIG=$cfg run "$SCTL" kv put cfg/k viaconfig
  [ "$status" -eq 0 ]
  SCTL_CONFIG=$cfg SCTL_SERVER=http://127.0.0.1:1 run "$SCTL" kv get cfg/k
  [ "$status" -eq 3 ]
  SCTL_CONFIG=$cfg SCTL_SERVER=http://127.0.0.1:1 run "$SCTL" --server "http://127.0.0.1:$PORT" kv get cfg/k
  [ "$status" -eq 0 ] && [ "$output" = viaconfig ]
  printf 'server = http://127.0.0.1:%s\nsevrer = x\n' "$PORT" >"$cfg"
  SCTL_CONFIG=$cfg run "$SCTL" kv get cfg/k
  [ "$status" -eq 2 ] && [[ "$output" == *"$cfg:2:1: unknown setting 'sevrer'"* ]]
  SCTL_CONFIG=$BATS_TEST_TMPDIR/missing run "$SCTL" kv get cfg/k
  [ "$status" -eq 2 ] && [[ "$output" == *"does not exist"* ]]
}

@test "member list, add a learner, refuse a duplicate, remove it" {
  run "$SCTL" member list
  [ "$status" -eq 0 ]
  [[ "${lines[0]}" == "NAME"*"ROLE"*"LEADER"*"PEER"*"CLIENT" ]]
  [[ "${lines[1]}" == *"voter"*"*"* ]]
  fake=$("$SC_FREEPORT")
  run "$SCTL" member add c9 "127.0.0.1:$fake"
  [ "$status" -eq 0 ] && [[ "$output" == "added learner c9 (log index "* ]]
  run "$SCTL" member list -o json
  [ "$(echo "$output" | jq '[.members[] | select(.role == "learner")] | length')" = 1 ]
  run "$SCTL" member add c9 "127.0.0.1:$fake"
  [ "$status" -eq 1 ] && [[ "$output" == *"member_exists"* ]]
  run "$SCTL" member add c10 not-an-address
  [ "$status" -eq 1 ] && [[ "$output" == *"invalid_argument"* ]]
  run "$SCTL" member remove c9
  [ "$status" -eq 0 ] && [[ "$output" == "removed c9 (log index "* ]]
  run "$SCTL" member list -o json
  [ "$(echo "$output" | jq '.members | length')" = 1 ]
}

@test "version names both sides; help and completion" {
  run "$SCTL" version
  [ "$status" -eq 0 ]
  [[ "${lines[0]}" == "sctl    "* ]]
  [[ "${lines[1]}" == "server  "*"at http://127.0.0.1:$PORT"* ]]
  run "$SCTL" help
  [ "$status" -eq 0 ] && [[ "$output" == *"exit codes:"* ]]
  run "$SCTL" help kv
  [ "$status" -eq 0 ] && [[ "$output" == *"sctl kv watch"* ]]
  run "$SCTL" completion bash
  [ "$status" -eq 0 ]
  # the script defines the function; completing "sctl k" offers kv
  out=$(bash -c 'source /dev/stdin; COMP_WORDS=(sctl k); COMP_CWORD=1; _sctl; echo "${COMPREPLY[*]}"' <<<"$output")
  [ "$out" = kv ]
  out=$(bash -c 'source /dev/stdin; COMP_WORDS=(sctl member p); COMP_CWORD=2; _sctl; echo "${COMPREPLY[*]}"' <<<"$output")
  [ "$out" = promote ]
  # member names come from the cluster itself (sctl on PATH, SCTL_SERVER set)
  out=$(PATH="$(dirname "$SCTL"):$PATH" bash -c 'source /dev/stdin; COMP_WORDS=(sctl member remove d); COMP_CWORD=3; _sctl; echo "${COMPREPLY[*]}"' <<<"$output")
  [ "$out" = default ]
}
