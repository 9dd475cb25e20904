#!/usr/bin/env bash
# Installs what is missing, builds SwiftCube with ASan+UBSan and runs every test:
# unit (TAP, one process per case), golden scripts, system tests with real
# processes, and a short libFuzzer run of every harness.  Ends with the line
# `N passed, N failed, N skipped` counted over meson's tests and the fuzz runs.
#
#   scripts/test.sh                 everything
#   FUZZ_SECONDS=600 scripts/test.sh   longer, exploring fuzz runs (the default is a
#                                      fixed-seed run of 100,000 inputs a harness, so
#                                      that CI gives the same verdict on every run)
#   SC_SUITES=unit scripts/test.sh     only some meson suites (unit, system)
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/deps.sh || { echo "deps: installation failed"; echo "0 passed, 1 failed"; exit 1; }

build=${SC_TEST_BUILD:-build-test}
san_args=(-Db_sanitize=address,undefined -Db_lundef=false
          "-Dc_args=-fno-sanitize-recover=all -fno-omit-frame-pointer")
if [ ! -f "$build/build.ninja" ]; then
  CC=gcc meson setup "$build" "${san_args[@]}" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$build" >"$build/ninja.log" 2>&1; then
  tail -50 "$build/ninja.log"
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

suite_args=()
for s in ${SC_SUITES:-}; do suite_args+=(--suite "$s"); done
meson test -C "$build" --print-errorlogs --num-processes 2 "${suite_args[@]}" 2>&1 | tee "$build/test.out" | grep -vE '^\s*$' | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout|Expected|Unexpected)' || true

count() { awk -v k="$1" '$1==k":" {print $2}' "$build/test.out" | tail -1; }
ok=$(count Ok); fail=$(count Fail); skip=$(count Skipped); tmo=$(count Timeout); xpass=$(count "Unexpected Pass")
passed=${ok:-0}
failed=$(( ${fail:-0} + ${tmo:-0} + ${xpass:-0} ))
skipped=${skip:-0}
[ -n "$ok" ] || failed=$((failed + 1))   # meson itself did not finish

# libFuzzer harnesses: built with clang in their own tree, each run for a while.
if [ -z "${SC_SUITES:-}" ] && [ -d tests/fuzz ] && [ -f tests/fuzz/run.sh ]; then
  if [ -n "${FUZZ_SECONDS:-}" ]; then fuzz_args=("$FUZZ_SECONDS"); else fuzz_args=(--runs 100000); fi
  if bash tests/fuzz/run.sh "${fuzz_args[@]}" >"$build/fuzz.log" 2>&1; then
    n=$(grep -c '^fuzz-ok ' "$build/fuzz.log"); passed=$((passed + n))
  else
    tail -40 "$build/fuzz.log"
    n=$(grep -c '^fuzz-ok ' "$build/fuzz.log"); passed=$((passed + n))
    failed=$((failed + $(grep -c '^fuzz-fail ' "$build/fuzz.log") ))
  fi
  grep -E '^fuzz-(ok|fail) ' "$build/fuzz.log"
fi

# what failed, near the end where a truncated CI log still shows it: each failing
# TAP case with the lines printed under it, from meson's log of the run
if [ "$failed" -gt 0 ]; then
  echo "--- failures (whole logs: $build/meson-logs/testlog.txt) ---"
  grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|ERROR|TIMEOUT)' "$build/test.out" | sort -u
  grep -E -A12 '^not ok ' "$build/meson-logs/testlog.txt" | head -80
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
