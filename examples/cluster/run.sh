#!/usr/bin/env bash
# Two wslua instances of examples/cluster/app.lua sharing the topic "room"
# through a Redis of their own (a temporary folder, REDIS_PORT or 6390).
# Connect to ws://127.0.0.1:1340/ws and ws://127.0.0.1:1341/ws: a message sent
# to one instance reaches the clients of both. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${REDIS_PORT:-6390}
a=${PORT_A:-1340}
b=${PORT_B:-1341}
bin=${WSLUA_BIN:-build/wslua}
dir=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

"$bin" examples/cluster/app.lua --listen "127.0.0.1:$a" --redis "redis://127.0.0.1:$port" &
pids+=($!)
"$bin" examples/cluster/app.lua --listen "127.0.0.1:$b" --redis "redis://127.0.0.1:$port" &
pids+=($!)
wait
