#!/usr/bin/env bash
# Installs what building and testing wslua needs, from Debian's packages and,
# for the test peers only, npm. Idempotent: installs only what is missing.
# Usage: scripts/deps.sh [build|test|fuzz]   (test also installs the interop
# peers; fuzz the clang and libFuzzer of `make fuzz`)
# bench: the peers of `make bench` (libwebsockets, Python websockets, Node ws).
set -euo pipefail
what=${1:-build}
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libuv1-dev liblua5.4-dev lua5.4
      libssl-dev zlib1g-dev node-llhttp libhiredis-dev lua-busted lua-cjson)
if [ "$what" = test ]; then
  pkgs+=(python3-websockets chromium valgrind nodejs npm openssl redis-server)
fi
if [ "$what" = fuzz ]; then
  pkgs+=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
fi
if [ "$what" = bench ]; then
  pkgs+=(libwebsockets-dev python3-websockets nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  # nodejs/npm may come from elsewhere than Debian; a working command is enough.
  case $p in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "wslua needs these packages; run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm peers: ws, and playwright-core to drive the system's Chromium (it
# never downloads a browser of its own).
if [ "$what" = test ] && { [ ! -d spec/interop/node_modules/ws ] ||
                           [ ! -d spec/interop/node_modules/playwright-core ]; }; then
  (cd spec/interop &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent)
fi

# The benchmarks' Node peer: ws alone, in bench/node_modules (or the interop
# peers' copy when present).
if [ "$what" = bench ] && [ ! -d bench/node_modules/ws ] &&
  [ ! -d spec/interop/node_modules/ws ]; then
  (cd bench && npm install --no-audit --no-fund --silent)
fi
