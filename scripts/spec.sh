#!/usr/bin/env bash
# Runs one busted spec file against the core module in BUILD_DIR/lua.
# With WSLUA_MEMCHECK=1 it runs under valgrind: any invalid access or
# definite leak fails the spec.
# Usage: scripts/spec.sh BUILD_DIR SPEC_FILE
set -euo pipefail
build=$1
spec=$2
# A sanitizer build (make asan) has its own interpreter, with the
# sanitizer's runtime linked in, for the instrumented core module.
lua=lua5.4
if [ -x "$build/lua_sanitized" ]; then
  lua=$build/lua_sanitized
  # A small quarantine: specs that bound RSS growth would otherwise count
  # the freed blocks ASan holds back (256 MiB by default).
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=2}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmd=("$lua" /usr/bin/busted --cpath="$build/lua/?.so" "$spec")
if [ "${WSLUA_MEMCHECK:-0}" = 1 ]; then
  exec valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --track-origins=yes --keep-debuginfo=yes "${cmd[@]}"
fi
exec "${cmd[@]}"
