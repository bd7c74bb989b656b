#!/usr/bin/env bash
# Runs one busted spec file against the core module in BUILD_DIR/lua.
# With WSLUA_MEMCHECK=1 it runs under valgrind: any invalid access or
# definite leak fails the spec.
# Usage: scripts/spec.sh BUILD_DIR SPEC_FILE
set -euo pipefail
build=$1
spec=$2
cmd=(lua5.4 /usr/bin/busted --cpath="$build/lua/?.so" "$spec")
if [ "${WSLUA_MEMCHECK:-0}" = 1 ]; then
  exec valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --track-origins=yes --keep-debuginfo=yes "${cmd[@]}"
fi
exec "${cmd[@]}"
