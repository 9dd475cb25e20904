#!/usr/bin/env bats
# slet_image.bats: `slet image ...` and `slet cell run --image` end to end, through
# the real binary (docs/image.md, docs/cell.md).
#
# A tiny root (Debian's static busybox plus applet links) is packed, signed with a
# key generated here, imported into a store in the test's temp dir (trusting only
# that key), listed, run in a Cell by name and by identity (root only: skipped
# otherwise), refused while leased, and removed.  Unsigned, tampered, untrusted
# and re-signed-by-a-stranger images are refused with the library's message and
# leave the store unchanged; bad REFs and URLs name what is wrong.  If Debian's
# docker-registry is installed, an image goes store -> registry -> empty store on
# 127.0.0.1 at a free port (the registry is ended by its PID in teardown).
#
# Run: meson test -C BUILD slet_image --print-errorlogs, or by hand:
#   SLET=BUILD/src/slet/slet SC_FREEPORT=BUILD/tests/system/freeport \
#   bats tests/system/slet_image.bats

setup_file() {
  : "${SLET:?SLET must name the slet binary}"
  [ -x /bin/busybox ] || { echo "busybox-static is not installed (scripts/deps.sh)" >&2; return 1; }
  local root="$BATS_FILE_TMPDIR/root" a
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc}
  cp /bin/busybox "$root/bin/"
  for a in sh true echo cat sleep; do ln -s busybox "$root/bin/$a"; done
  echo "root:x:0:0::/:/bin/sh" >"$root/etc/passwd"
  mkdir -p "$BATS_FILE_TMPDIR/trust" "$BATS_FILE_TMPDIR/other"
  "$SLET" image keygen "$BATS_FILE_TMPDIR/key.pem" "$BATS_FILE_TMPDIR/trust/key.pem"
  "$SLET" image keygen "$BATS_FILE_TMPDIR/stranger.pem" "$BATS_FILE_TMPDIR/other/stranger.pem"
  ID=$("$SLET" image pack "$root" -o "$BATS_FILE_TMPDIR/bb.pack" --name bb \
    --arg /bin/echo --arg "hello from the image")
  [[ $ID =~ ^blake3:[0-9a-f]{64}$ ]]
  "$SLET" image sign "$BATS_FILE_TMPDIR/bb.pack" --key "$BATS_FILE_TMPDIR/key.pem"
  export ID
}

setup() {
  export F=$BATS_FILE_TMPDIR
  S=(--store "$BATS_TEST_TMPDIR/store" --trust "$F/trust")
  REG_PID=
  SLET_PID=
}

teardown() {
  [ -z "$SLET_PID" ] || { kill "$SLET_PID" 2>/dev/null; wait "$SLET_PID" 2>/dev/null || true; }
  [ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
}

# The identities `slet image ls` shows, one per line.
ids() {
  "$SLET" image ls "${S[@]}" | tail -n +2 | cut -d' ' -f1
}

@test "pack is deterministic, import and ls show the signed image, rm removes it" {
  local again
  again=$("$SLET" image pack "$F/root" -o "$BATS_TEST_TMPDIR/again.pack" --name bb \
    --arg /bin/echo --arg "hello from the image")
  [ "$again" = "$ID" ]
  run "$SLET" image import "$F/bb.pack" "${S[@]}"
  [ "$status" -eq 0 ]
  [ "$output" = "$ID" ]
  run "$SLET" image ls "${S[@]}"
  [ "$status" -eq 0 ]
  [[ ${lines[1]} =~ ^$ID\ +bb\ +2\ + ]]
  [ "${#lines[@]}" -eq 2 ]
  run "$SLET" image rm bb "${S[@]}"
  [ "$status" -eq 0 ]
  [ -z "$(ids)" ]
  run "$SLET" image rm bb "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *'no image named "bb" in store '*store* ]]
}

@test "unsigned, tampered, untrusted and stranger-signed images are refused" {
  cp "$F/bb.pack" "$BATS_TEST_TMPDIR/u.pack"
  run "$SLET" image import "$BATS_TEST_TMPDIR/u.pack" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"u.pack: image $ID is unsigned; this node runs only signed images"* ]]

  cp "$F/bb.pack" "$BATS_TEST_TMPDIR/t.pack"
  cp "$F/bb.pack.sig" "$BATS_TEST_TMPDIR/t.pack.sig"
  printf 'X' | dd of="$BATS_TEST_TMPDIR/t.pack" bs=1 seek=4000 conv=notrunc 2>/dev/null
  run "$SLET" image import "$BATS_TEST_TMPDIR/t.pack" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"t.pack: image content is blake3:"*"but the signature is for $ID: the image was changed after signing"* ]]

  run "$SLET" image import "$F/bb.pack" --store "$BATS_TEST_TMPDIR/store" --trust "$F/other"
  [ "$status" -eq 1 ]
  [[ $output == *"signed by key ed25519:"*"which is not among this node's 1 trusted keys"* ]]

  cp "$F/bb.pack" "$BATS_TEST_TMPDIR/s.pack"
  "$SLET" image sign "$BATS_TEST_TMPDIR/s.pack" --key "$F/stranger.pem"
  run "$SLET" image import "$BATS_TEST_TMPDIR/s.pack" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"not among this node's 1 trusted keys"* ]]

  run "$SLET" image import "$F/bb.pack" --store "$BATS_TEST_TMPDIR/store" --trust "$BATS_TEST_TMPDIR/none"
  [ "$status" -eq 1 ]
  [[ $output == *"trusted keys directory $BATS_TEST_TMPDIR/none: No such file or directory"* ]]

  [ -z "$(ids)" ]
}

@test "bad arguments say what is wrong" {
  run "$SLET" image import "$BATS_TEST_TMPDIR/missing.pack" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"missing.pack: No such file or directory"* ]]
  run "$SLET" image rm blake3:zz "${S[@]}"
  [ "$status" -ne 0 ]
  [[ $output == *"blake3:zz"* ]]
  run "$SLET" image push bb ftp://example "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"must start with http:// or https://"* ]]
  run "$SLET" image pull http://127.0.0.1:1 "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"names no repository"* ]]
  run "$SLET" image pack "$F/root"
  [ "$status" -eq 2 ]
  [[ $output == *"needs DIR and -o FILE"* ]]
  run "$SLET" image frob
  [ "$status" -eq 2 ]
  run "$SLET" cell run --image bb --root / --store "$BATS_TEST_TMPDIR/store" -- /bin/true
  [ "$status" -eq 2 ]
  [[ $output == *"exactly one of --root DIR and --image REF"* ]]
  run "$SLET" cell run --image nosuch --store "$BATS_TEST_TMPDIR/store" -- /bin/true
  [ "$status" -eq 125 ]
  [[ $output == *'image nosuch: no image named "nosuch" in store'* ]]
}

@test "cell run --image runs the stored image, holds a lease, and rm waits for it" {
  [ "$(id -u)" -eq 0 ] || skip "Cells need root"
  "$SLET" image import "$F/bb.pack" "${S[@]}"
  local st=(--store "$BATS_TEST_TMPDIR/store")
  run "$SLET" cell run --image bb "${st[@]}" -- /bin/true
  [ "$status" -eq 0 ]
  run "$SLET" cell run --image "$ID" "${st[@]}" -- /bin/sh -c 'exit 7'
  [ "$status" -eq 7 ]
  # No command: the image's manifest argv.
  run "$SLET" cell run --image bb "${st[@]}"
  [ "$status" -eq 0 ]
  [ "$output" = "hello from the image" ]
  # The manifest's writable paths (/tmp, /run) are the Cell's tmpfs.
  run "$SLET" cell run --image bb "${st[@]}" -- /bin/sh -c 'echo x >/tmp/f && cat /tmp/f'
  [ "$status" -eq 0 ]
  [ "$output" = "x" ]

  "$SLET" cell run --image bb "${st[@]}" --name held --grace 1 -- /bin/sleep 60 \
    >"$BATS_TEST_TMPDIR/held.log" 2>&1 &
  SLET_PID=$!
  local i
  for i in $(seq 1 100); do
    "$SLET" image ls "${S[@]}" | grep -Eq "^$ID +bb +2 +[0-9]+ +1 " && break
    sleep 0.1
  done
  "$SLET" image ls "${S[@]}" | grep -Eq "^$ID +bb +2 +[0-9]+ +1 "
  run "$SLET" image rm bb "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"slet image rm bb: image $ID is in use (1 leases)"* ]]
  [ -n "$(ids)" ]
  kill -TERM "$SLET_PID"
  wait "$SLET_PID" || true
  SLET_PID=
  "$SLET" image ls "${S[@]}" | grep -Eq "^$ID +bb +2 +[0-9]+ +0 "
  run "$SLET" image rm bb "${S[@]}"
  [ "$status" -eq 0 ]
  [ -z "$(ids)" ]
}

@test "push to a registry and pull into an empty store" {
  [ -x /usr/bin/docker-registry ] || skip "docker-registry is not installed"
  : "${SC_FREEPORT:?SC_FREEPORT must name tests/system/freeport}"
  local port dir=$BATS_TEST_TMPDIR/reg i
  port=$("$SC_FREEPORT")
  mkdir -p "$dir"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/data" "$port" >"$dir/config.yml"
  /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 3>&- &
  REG_PID=$!
  for i in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.05
  done
  "$SLET" image import "$F/bb.pack" "${S[@]}"
  run "$SLET" image push bb "http://127.0.0.1:$port/team/bb:v1" "${S[@]}"
  [ "$status" -eq 0 ]
  [ "$output" = "$ID http://127.0.0.1:$port/team/bb:v1" ]
  local s2=(--store "$BATS_TEST_TMPDIR/store2" --trust "$F/trust")
  run "$SLET" image pull "http://127.0.0.1:$port/team/bb:v1" "${s2[@]}"
  [ "$status" -eq 0 ]
  [ "$output" = "$ID" ]
  run "$SLET" image pull "http://127.0.0.1:$port/team/bb:v1" --store "$BATS_TEST_TMPDIR/store3" --trust "$F/other"
  [ "$status" -eq 1 ]
  [[ $output == *"not among this node's 1 trusted keys"* ]]
  run "$SLET" image pull "http://127.0.0.1:$port/team/bb:nope" "${s2[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"slet image pull http://127.0.0.1:$port/team/bb:nope: "* ]]
}

@test "import of an OCI layout (written by umoci) signs it with --key and runs it" {
  command -v umoci >/dev/null || skip "umoci is not installed"
  [ "$(id -u)" -eq 0 ] || skip "umoci unpack and Cells need root"
  local l=$BATS_TEST_TMPDIR/layout b=$BATS_TEST_TMPDIR/bundle id again
  umoci init --layout "$l"
  umoci new --image "$l:v1"
  umoci unpack --image "$l:v1" "$b"
  cp -a "$F/root/." "$b/rootfs/"
  umoci repack --image "$l:v1" "$b"
  umoci config --image "$l:v1" --config.entrypoint /bin/echo --config.cmd "from oci" \
    --config.workingdir /tmp
  run "$SLET" image import "$l" --ref v1 "${S[@]}"
  [ "$status" -eq 2 ]
  [[ $output == *"OCI layout $l is not signed: give --key PRIV.pem"* ]]
  run "$SLET" image import "$l" --ref nope --key "$F/key.pem" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"slet image import $l: "*nope* ]]
  id=$("$SLET" image import "$l" --ref v1 --name oci-bb --key "$F/key.pem" "${S[@]}")
  [[ $id =~ ^blake3:[0-9a-f]{64}$ ]]
  again=$("$SLET" image import "$l" --ref v1 --name oci-bb --key "$F/key.pem" "${S[@]}")
  [ "$again" = "$id" ]
  "$SLET" image ls "${S[@]}" | grep -Eq "^$id +oci-bb "
  run "$SLET" cell run --image oci-bb --store "$BATS_TEST_TMPDIR/store"
  [ "$status" -eq 0 ]
  [ "$output" = "from oci" ]
  run "$SLET" image import "$l" --ref v1 --key "$F/stranger.pem" "${S[@]}"
  [ "$status" -eq 1 ]
  [[ $output == *"not among this node's 1 trusted keys"* ]]
}
