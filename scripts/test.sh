#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite with ctest.
#   scripts/test.sh              # RelWithDebInfo build in build/
#   scripts/test.sh --sanitize   # ASan+UBSan build in build-asan/
#   scripts/test.sh --tsan       # ThreadSanitizer build in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  scripts/setup.sh --sanitize --build-dir build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  cd build-asan
elif [ "${1:-}" = "--tsan" ]; then
  scripts/setup.sh --tsan --build-dir build-tsan
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  cd build-tsan
else
  scripts/setup.sh --build-dir build
  cd build
fi
ctest --output-on-failure --timeout 300 -j 2
