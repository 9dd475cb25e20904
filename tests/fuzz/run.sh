#!/usr/bin/env bash
# Builds every libFuzzer harness (tests/fuzz/fuzz_*.c, clang) in build-fuzz and
# runs each for SECONDS seconds (default $FUZZ_SECONDS or 15) on a corpus kept in
# build-fuzz/corpus/NAME, seeded from tests/fuzz/seeds/NAME/ when that exists.
# Prints exactly one line per harness, `fuzz-ok NAME` or `fuzz-fail NAME`, and
# exits non-zero if any failed; a failure's log tail goes to stderr and the
# crashing input is left in build-fuzz/NAME-artifacts/.
#
#   tests/fuzz/run.sh              15 s each, random seed: exploring
#   tests/fuzz/run.sh 600          ten minutes each
#   tests/fuzz/run.sh --runs N     N inputs each from seed 1 (what scripts/test.sh runs):
#                                  the same inputs every time, so a CI verdict does not
#                                  change between runs of one commit; a crash found by
#                                  exploring goes into tests/fuzz/seeds/NAME/ once fixed
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = --runs ]; then
  limit=(-seed=1 -runs="${2:?--runs needs a count}" -max_total_time=600)
else
  limit=(-max_total_time="${1:-${FUZZ_SECONDS:-15}}")
fi
build=${SC_FUZZ_BUILD:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  log=$(mktemp /tmp/sc-fuzz-setup.XXXXXX)
  if ! CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Db_lundef=false >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -f "$log"
    echo "fuzz-fail setup"
    exit 1
  fi
  rm -f "$log"
fi

# Only the harnesses (and what they link) are built: the rest of the tree is
# built and tested by scripts/test.sh with gcc.
mapfile -t targets < <(ninja -C "$build" -t targets all 2>/dev/null |
  sed -n 's#^\(tests/fuzz/fuzz_[A-Za-z0-9_]*\): .*#\1#p' | sort -u)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz_* targets in $build" >&2
  echo "fuzz-fail none"
  exit 1
fi
if ! ninja -C "$build" "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log" >&2
  for t in "${targets[@]}"; do echo "fuzz-fail $(basename "$t")"; done
  exit 1
fi

failed=0
for exe in "$build"/tests/fuzz/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=$(basename "$exe")
  corpus="$build/corpus/$name"
  artifacts="$build/$name-artifacts/"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  [ -d "tests/fuzz/seeds/$name" ] && dirs+=("tests/fuzz/seeds/$name")
  if "$exe" "${limit[@]}" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$artifacts" -print_final_stats=1 "${dirs[@]}" \
      >"$build/$name.log" 2>&1; then
    echo "fuzz-ok $name"
  else
    tail -40 "$build/$name.log" >&2
    echo "fuzz-fail $name"
    failed=1
  fi
done
exit "$failed"
