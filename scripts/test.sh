#!/usr/bin/env bash
# Sets everything up and runs every test: the normal build (warnings are errors), the
# AddressSanitizer + UndefinedBehaviorSanitizer build, a short libFuzzer run of every fuzz
# target, and the format check. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

[ "${CG_SKIP_SETUP:-}" = 1 ] || scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${CG_FUZZ_SECONDS:-20}
status=0

step() { printf '\n=== %s\n' "$*"; }

step "format check (clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find agent k8s cloud tests -name '*.[ch]')
if ! clang-format --dry-run -Werror "${sources[@]}"; then
    echo "format: run clang-format -i on the files above"; status=1
fi

step "build and test (gcc, -Werror)"
cmake -S . -B build -G Ninja -DCG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build
(cd build && ctest --output-on-failure -j "$jobs") || status=1

step "build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCG_WERROR=ON -DCG_ASAN=ON -DCG_UBSAN=ON \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-asan
# The fault matrix runs a sample here (every step and every fault kind at least once; the
# full cross runs in the plain build above): its hundreds of agent runs under the sanitizers'
# slowdown would turn it into a test of the machine's speed. The crash tests run in full.
(cd build-asan && CG_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs") \
    || status=1

step "fuzz targets (libFuzzer, ${fuzz_seconds}s each)"
CC=clang-14 cmake -S . -B build-fuzz -G Ninja -DCG_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-fuzz
for target in build-fuzz/tests/fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    name=$(basename "$target")
    corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
    scratch=$(mktemp -d)
    # New inputs go to a scratch dir; the committed corpus is read-only seed material.
    if "$target" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$scratch" "$corpus" \
        >"$scratch.log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch.log" | tail -1)
        echo "fuzz: $name ok (${execs:-?} executions, $(grep -c . <(ls "$scratch")) new inputs)"
    else
        echo "fuzz: $name FAILED"; tail -40 "$scratch.log"; status=1
    fi
    rm -rf "$scratch" "$scratch.log"
done

if [ $status -eq 0 ]; then
    step "all tests passed"
else
    step "some tests FAILED"
fi
exit $status
