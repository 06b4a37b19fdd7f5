#!/usr/bin/env bash
# Builds the native addon with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/Release) and
# runs the native and backstore unit tests against it. Node itself is not instrumented, so the ASan
# runtime is preloaded; leak detection is off because Node does not free everything at exit.
# Usage: bash scripts/test-asan.sh [extra vitest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. The plain C++ parts (shared-memory region, synchronous I/O, CRC32C) as a sanitized executable.
cmake -S native/test -B build-asan/ctest -DVTGT_SANITIZE=ON >/dev/null
cmake --build build-asan/ctest --parallel 2 >/dev/null
ASAN_OPTIONS="detect_leaks=1" ctest --test-dir build-asan/ctest --output-on-failure

# 2. The addon itself, loaded by Node, under the native and backstore TypeScript tests.
npm run --silent build:native:asan
addon="$PWD/build-asan/Release/vtgt_native.node"
if ! nm -D "$addon" | grep -c '__asan_' >/dev/null; then
  echo "test-asan: $addon is not built with AddressSanitizer" >&2
  exit 1
fi

asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$asan" "$ubsan"; do
  if [ ! -e "$lib" ]; then
    echo "test-asan: $lib not found (Debian: apt-get install g++ provides libasan/libubsan)" >&2
    exit 1
  fi
done

export VTGT_NATIVE_ADDON="$addon"
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allow_user_segv_handler=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The io engine's own threads and io_uring paths run under the sanitizers too: exercise both engines.
npx vitest run test/native- test/backstore- "$@"
