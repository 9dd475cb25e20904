# sctld_lib.bash: starting and stopping one sctld for the bats system tests
# (`load sctld_lib` in a .bats file).  Needs $SCTLD (the binary) and
# $SC_FREEPORT (tests/system/freeport); every sctld is ended by its PID.

# Starts sctld on a free port with a data dir under $1; sets PORT and SCTLD_PID.
start_sctld() {
  local dir=$1
  shift
  mkdir -p "$dir"
  PORT=$("$SC_FREEPORT")
  "$SCTLD" --data-dir "$dir/data" --listen "127.0.0.1:$PORT" "$@" >>"$dir/sctld.log" 2>&1 3>&- &
  SCTLD_PID=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$SCTLD_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "sctld did not come up; log:" >&2
  tail -20 "$dir/sctld.log" >&2
  return 1
}

# Ends sctld by its PID (SIGTERM, then SIGKILL after 10 s); sets STOP_STATUS.
stop_sctld() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    STOP_STATUS=timeout
    wait "$pid" 2>/dev/null || true
    return 0
  fi
  STOP_STATUS=0
  wait "$pid" || STOP_STATUS=$?
}
