# sctld_lib.bash: starting and stopping one sctld for the bats system tests
# (`load sctld_lib` in a .bats file), and helpers they share: waiting, and the
# signed example image.  Needs $SCTLD (the binary) and $SC_FREEPORT
# (tests/system/freeport); every sctld is ended by its PID.

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

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds; 1 at the end.
wait_for() {
  local n=$(($1 * 10)) i
  shift
  for i in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out: $*" >&2
  return 1
}

# wait_gone PID: waits up to 10 s for PID to end, then SIGKILLs it.
wait_gone() {
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# hello_image DIR: builds examples/hello/hello.c statically into an image root under
# DIR, packs it, signs it with a key made here (trusted in DIR/trust) and imports it
# into the image store DIR/store; prints the image's blake3:... id.  Needs $SLET
# and $SC_SRCDIR.
hello_image() {
  local d=$1 img
  mkdir -p "$d/root"/{proc,dev,tmp,run} "$d/trust"
  cc -O2 -static -o "$d/root/hello" "$SC_SRCDIR/examples/hello/hello.c" || return 1
  "$SLET" image keygen "$d/key.pem" "$d/trust/key.pem" >/dev/null || return 1
  img=$("$SLET" image pack "$d/root" -o "$d/hello.pack" --name hello --arg /hello) || return 1
  "$SLET" image sign "$d/hello.pack" --key "$d/key.pem" >/dev/null || return 1
  "$SLET" image import "$d/hello.pack" --store "$d/store" --trust "$d/trust" >/dev/null || return 1
  echo "$img"
}
