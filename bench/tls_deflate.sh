#!/usr/bin/env bash
# The closing figures of the compression and TLS work (README: Compression,
# TLS): on a stream of JSON chat messages, the compression ratio (wire bytes
# the server sends per message / payload bytes) and messages per second,
# permessage-deflate against none (bench/loadgen); TLS echo messages per
# second against plain ws:// (bench/tls_echo.lua, the same driver for both:
# loadgen has no TLS).
# Usage: bench/tls_deflate.sh [BUILD_DIR]
# Environment: BENCH_SECS (measured seconds per run, 5), BENCH_WARMUP (1),
#   BENCH_REPS (3), BENCH_PORT (first port, 19300), BENCH_JSON_SIZE (about
#   how many bytes a JSON message has, 200), BENCH_SCHED (fifo | none, as
#   bench/run.sh: fifo by default as root).
# The server (examples/echo/app.lua: "/" plain, "/deflate" with the default
# compression; bench/idle_memory_app.lua's "/dedicated" for compression
# keeping its context between messages) runs pinned to core 0, the load to core 1; runs are
# interleaved and each figure is the median of the runs. The wire bytes come
# from the server's access lines (WebSocket bytes, frame headers included,
# before TLS), summed over the connections of a run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${BENCH_SECS:-5}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
port=${BENCH_PORT:-19300}
JSON_SIZE=${BENCH_JSON_SIZE:-200}
SCHED=${BENCH_SCHED:-$([ "$(id -u)" -eq 0 ] && echo fifo || echo none)}
PIN_SERVER=(taskset -c 0)
PIN_LOAD=(taskset -c 1)
if [ "$SCHED" = fifo ]; then
  PIN_SERVER=(chrt -f 1 taskset -c 0)
  PIN_LOAD=(chrt -f 1 taskset -c 1)
fi
LOADGEN=$BUILD/bench/loadgen
for f in "$LOADGEN" "$BUILD/wslua" "$BUILD/lua/wslua/core.so"; do
  [ -e "$f" ] || { echo "tls_deflate.sh: $f missing (cmake --build $BUILD --target bench)" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "tls_deflate.sh: needs 2 cores" >&2; exit 1; }

TMP=$(mktemp -d)
SPID=
cleanup() {
  [ -z "$SPID" ] || kill "$SPID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
examples/wss/make-cert.sh "$TMP" >/dev/null

# start_server APP PORT [TLS]: sets SPID; the log (info: access lines) in
# $TMP/server.log.
start_server() {
  local tls=()
  [ -z "${3:-}" ] || tls=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
  : >"$TMP/server.log"
  "${PIN_SERVER[@]}" "$BUILD/wslua" "$1" --listen "127.0.0.1:$2" \
    --log-format json "${tls[@]}" >"$TMP/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$TMP/server.log" && return 0
    sleep 0.1
  done
  echo "tls_deflate.sh: the server did not start: $(cat "$TMP/server.log")" >&2
  exit 1
}

# stop_server CONNS: waits for the access lines of CONNS sessions, then
# stops the server; sets WIRE to "bytes_out messages_out" summed.
stop_server() {
  for _ in $(seq 100); do
    [ "$(grep -c '"msg":"access"' "$TMP/server.log")" -ge "$1" ] && break
    sleep 0.1
  done
  kill "$SPID"
  wait "$SPID" 2>/dev/null || true
  SPID=
  WIRE=$(grep '"msg":"access"' "$TMP/server.log" | sed -n 's/.*"messages_out":\([0-9]*\).*"bytes_out":\([0-9]*\).*/\2 \1/p' |
    awk '{b += $1; m += $2} END {print b + 0, m + 0}')
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

declare -A RUNS
# run NAME: one run of a scenario on a fresh server.
run() {
  local p=$port line
  port=$((port + 1))
  case $1 in
    json_plain | json_deflate | json_dedicated)
      local app=examples/echo/app.lua path=/ z=()
      [ "$1" = json_deflate ] && path=/deflate z=(--deflate)
      [ "$1" = json_dedicated ] && app=bench/idle_memory_app.lua path=/dedicated z=(--deflate)
      start_server "$app" "$p"
      line=$("${PIN_LOAD[@]}" timeout $((SECS + WARM + 60)) "$LOADGEN" --port "$p" --path "$path" \
        -c 100 -s "$JSON_SIZE" --json "${z[@]}" -f 1 -d "$SECS" -w "$WARM" --cpu 0 | tail -1) ;;
    echo_ws | echo_wss)
      local url="ws://127.0.0.1:$p/" ca=()
      [ "$1" = echo_wss ] && url="wss://127.0.0.1:$p/" ca=(--ca "$TMP/cert.pem")
      start_server examples/echo/app.lua "$p" ${ca:+tls}
      line=$("${PIN_LOAD[@]}" timeout $((SECS + WARM + 60)) lua5.4 bench/tls_echo.lua "$url" "${ca[@]}" \
        -c 100 -s 32 -d "$SECS" -w "$WARM" --cpu 0 --build "$BUILD" | tail -1) ;;
  esac
  stop_server 100
  line="$line wire_bytes=${WIRE% *} wire_msgs=${WIRE#* }"
  echo "$1 $line" >>"$TMP/runs.txt"
  RUNS[$1]+="$line
"
  printf '  %-12s %s msg/s\n' "$1" "$(field "$line" msg_per_s)" >&2
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
# med NAME KEY: the median of KEY over NAME's runs.
med() { while read -r l; do [ -z "$l" ] || field "$l" "$2"; done <<<"${RUNS[$1]}" | median; }
# per_msg NAME: the median over runs of wire bytes per message sent.
per_msg() {
  while read -r l; do
    [ -z "$l" ] || awk -v b="$(field "$l" wire_bytes)" -v m="$(field "$l" wire_msgs)" 'BEGIN {printf "%.2f\n", b / m}'
  done <<<"${RUNS[$1]}" | median
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); scheduling $SCHED" >&2
for rep in $(seq "$REPS"); do
  echo "== run $rep of $REPS" >&2
  for sc in json_plain json_deflate json_dedicated echo_ws echo_wss; do
    run "$sc"
  done
done

plain_wire=$(per_msg json_plain)
# A server frame of 126 bytes or more has a 4-byte header.
payload=$(awk -v w="$plain_wire" 'BEGIN {printf "%.1f", w - (w - 2 >= 126 ? 4 : 2)}')
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "JSON chat messages of about $JSON_SIZE B ($payload B on average), 100 connections, 1 in flight:"
# row LABEL NAME: msg/s, wire bytes per message, ratio, server µs/msg.
row() {
  local wire
  wire=$(per_msg "$2")
  printf '  %s: %s msg/s, %s wire B per message (ratio %s), server core %s us/msg\n' "$1" \
    "$(med "$2" msg_per_s)" "$wire" "$(awk -v w="$wire" -v p="$payload" 'BEGIN {printf "%.3f", w / p}')" \
    "$(med "$2" core_us_per_msg)"
}
row "uncompressed" json_plain
row "permessage-deflate, defaults (no context kept)" json_deflate
row "permessage-deflate, dedicated (context kept)" json_dedicated
echo "Echo of 32 B text, 100 connections, 1 in flight (bench/tls_echo.lua):"
printf '  ws://:  %s msg/s, server core %s us/msg\n' "$(med echo_ws msg_per_s)" "$(med echo_ws core_us_per_msg)"
printf '  wss://: %s msg/s, server core %s us/msg (%s of ws://)\n' "$(med echo_wss msg_per_s)" \
  "$(med echo_wss core_us_per_msg)" \
  "$(awk -v a="$(med echo_wss msg_per_s)" -v b="$(med echo_ws msg_per_s)" 'BEGIN {printf "%.2fx", a / b}')"
echo
echo "every run:"
cat "$TMP/runs.txt"
