#!/usr/bin/env bash
# The fan-out scenario (issue 6): one publisher to 1,000 subscribers (32 B
# text) and to 10,000 subscribers (1 KiB text), against wslua with 1 worker,
# wslua with 2 workers and a Node `ws` broadcast loop; writes the table to
# bench/results/<date>-fanout.md.
# Usage: bench/fanout.sh [BUILD_DIR]
# Environment: BENCH_SECS (5), BENCH_WARMUP (1), BENCH_REPS (3), BENCH_PORT
#   (19300), BENCH_ONLY ("wslua1 wslua2 node"), BENCH_SCENARIOS ("fan1k
#   fan10k"), BENCH_WINDOW (16), BENCH_SCHED (as in run.sh).
# Pinning: wslua with 1 worker and Node run on core 0 alone, the load
# generator on core 1. wslua with 2 workers runs on cores 0 and 1, and the
# load generator shares core 1 with its second worker (a 2-core machine has
# no third core): its figure is what two workers reach on the whole machine
# with the load on it, and its µs per delivery is given for core 0 and for
# all cores (server and load). Every server and scenario is measured in the
# same run, interleaved (A B C A B C ...), medians of the runs.
# The publisher (path /pub) sends message k+1 only once every subscriber has
# received message k+1-window; at the end it stops and the subscribers get
# the rest (until 5 s pass without a delivery, 60 s at most): sent x
# subscribers must equal received.
# Loopback only; every run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${BENCH_SECS:-5}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PORT0=${BENCH_PORT:-19300}
WINDOW=${BENCH_WINDOW:-16}
# make bench passes run.sh's settings here too: names this script does not
# know are left out ("wslua" means both wslua rows), and if none is left
# there is nothing to run.
SERVERS=() SCENARIOS=()
for s in ${BENCH_ONLY:-wslua1 wslua2 node}; do
  case $s in
    wslua) SERVERS+=(wslua1 wslua2) ;;
    wslua1 | wslua2 | node) SERVERS+=("$s") ;;
  esac
done
for s in ${BENCH_SCENARIOS:-fan1k fan10k}; do
  case $s in fan1k | fan10k) SCENARIOS+=("$s") ;; esac
done
if [ ${#SERVERS[@]} -eq 0 ] || [ ${#SCENARIOS[@]} -eq 0 ]; then
  echo "fanout.sh: no fan-out server or scenario in BENCH_ONLY / BENCH_SCENARIOS" >&2
  exit 0
fi
SCHED=${BENCH_SCHED:-$([ "$(id -u)" -eq 0 ] && echo fifo || echo none)}
LOADGEN=$BUILD/bench/loadgen
for f in "$LOADGEN" "$BUILD/wslua"; do
  [ -x "$f" ] || { echo "fanout.sh: $f missing: make bench builds it" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "fanout.sh: needs 2 cores" >&2; exit 1; }
# 10,000 subscribers: as many descriptors in the server and in the load
# generator (the limit here is 20,000 per process).
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 10100 ] || { echo "fanout.sh: ulimit -n below 10,100" >&2; exit 1; }
# Round robin rather than FIFO, for every server Node included: with 2
# workers a worker and the load generator share core 1, and RR time-slices
# busy threads of one priority where FIFO lets one run until it blocks (the
# reason run.sh leaves Node ordinary; here Node has no zlib helpers and runs
# under RR, and on a machine busy with other work it must, or its figure
# measures the other work: 47,000 against 135,000 deliveries/s at 1,000).
FIFO=()
[ "$SCHED" = fifo ] && FIFO=(chrt -r 1)

declare -A NAME=([wslua1]="wslua, 1 worker" [wslua2]="wslua, 2 workers" [node]="Node ws")
declare -A CPUS=([wslua1]=0 [wslua2]=0,1 [node]=0)
declare -A ARGS=([fan1k]="-c 1000 -s 32" [fan10k]="-c 10000 -s 1024")
declare -A TITLE=([fan1k]="1 publisher → 1,000 subscribers, 32 B"
                  [fan10k]="1 publisher → 10,000 subscribers, 1 KiB")

if ! node -e "require.resolve('ws',{paths:['bench/node_modules','spec/interop/node_modules']})" 2>/dev/null; then
  echo "fanout.sh: skipping Node (ws not installed: scripts/deps.sh bench)" >&2
  SERVERS=(${SERVERS[@]/node/})
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

start_server() { # NAME PORT: sets SPID
  local cmd
  case $1 in
    wslua1) cmd=("$BUILD/wslua" bench/apps/fanout.lua --listen "127.0.0.1:$2" --log-level warn) ;;
    wslua2) cmd=("$BUILD/wslua" bench/apps/fanout.lua --listen "127.0.0.1:$2" --log-level warn --workers 2) ;;
    node) cmd=(node bench/peers/node_ws_fanout.js "$2") ;;
  esac
  # Every thread of the server inherits the policy.
  "${FIFO[@]}" taskset -c "${CPUS[$1]}" "${cmd[@]}" >>"$TMP/$1.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 100); do
    ss -Hltn "sport = :$2" | grep -q LISTEN && return 0
    sleep 0.1
  done
  echo "fanout.sh: $1 did not listen on $2" >&2
  return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 120); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }
median() { tr ' ' '\n' <<<"$1" | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "—"; else if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.2f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "—"; else printf "%.2fx", a / b }'; }

declare -A VALS CORE ALL LOST SENT
port=$PORT0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
RAW_LOG=$TMP/runs.txt
: >"$RAW_LOG"
started=$(date +%s)
for sc in "${SCENARIOS[@]}"; do
  echo "== ${TITLE[$sc]}" >&2
  for rep in $(seq "$REPS"); do
    for s in "${SERVERS[@]}"; do
      [ -n "$s" ] || continue
      p=$port
      port=$((port + 1))
      line="error=start"
      if start_server "$s" "$p"; then
        # shellcheck disable=SC2086
        "${FIFO[@]}" taskset -c 1 timeout $((${SECS%.*} + ${WARM%.*} + 120)) \
          "$LOADGEN" --port "$p" --fanout ${ARGS[$sc]} --window "$WINDOW" \
          -d "$SECS" -w "$WARM" --cpu 0 >"$TMP/load.out" 2>&1 || true
        line=$(tail -1 "$TMP/load.out")
        stop_server "$SPID"
      fi
      echo "$sc $s $rep $line" >>"$RAW_LOG"
      v=$(field "$line" msg_per_s)
      printf '   %-7s run %d: %s deliveries/s, lost %s\n' "$s" "$rep" "${v:-failed}" "$(field "$line" lost)" >&2
      [ -n "$v" ] || continue
      VALS[$sc:$s]+="$v "
      CORE[$sc:$s]+="$(field "$line" core_us_per_msg) "
      ALL[$sc:$s]+="$(field "$line" all_cores_us_per_msg) "
      LOST[$sc:$s]=$(( ${LOST[$sc:$s]:-0} + $(field "$line" lost) ))
      SENT[$sc:$s]=$(( ${SENT[$sc:$s]:-0} + $(field "$line" expected) ))
    done
  done
done

cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
day=$(date +%Y-%m-%d)
out=bench/results/$day-fanout.md
mkdir -p bench/results
{
  echo "# wslua fan-out benchmark, $day"
  echo
  echo "Machine: $(nproc) cores, $cpu_model, Linux $(uname -r)."
  echo "wslua ${BENCH_REV:-$(git describe --always --dirty 2>/dev/null || echo '?')} (bench/apps/fanout.lua: one \`wslua.publish\` per"
  echo "message); Node $(node --version 2>/dev/null || echo '—') with ws $(node -p "require(require.resolve('ws/package.json',{paths:['bench/node_modules','spec/interop/node_modules']})).version" 2>/dev/null || echo '—')"
  echo "(bench/peers/node_ws_fanout.js: a loop of \`send\` over the subscribers)."
  echo "One publisher sends the same text message; message k+1 leaves once every"
  echo "subscriber has received message k+1-$WINDOW. Deliveries are messages received"
  echo "by subscribers, each checked byte for byte; lost = sent × subscribers −"
  echo "received, once the publisher has stopped and 5 s pass without a delivery."
  echo "Pinning: wslua with 1 worker and Node alone on core 0, the load generator on"
  echo "core 1; wslua with 2 workers on cores 0 and 1, sharing core 1 with the load"
  echo "generator. Scheduling: $SCHED (with fifo, the load generator and every"
  echo "server, Node included, run SCHED_RR: see the script). ${SECS} s measured after ${WARM} s warm-up;"
  echo "median of $REPS interleaved runs, all in this one run of bench/fanout.sh."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| scenario | server | deliveries/s | core 0 µs/delivery | all cores µs/delivery | ÷ Node ws | lost / expected |"
  echo "|---|---|---|---|---|---|---|"
  for sc in "${SCENARIOS[@]}"; do
    node_m=$(median "${VALS[$sc:node]:-}")
    for s in "${SERVERS[@]}"; do
      [ -n "$s" ] || continue
      m=$(median "${VALS[$sc:$s]:-}")
      echo "| ${TITLE[$sc]} | ${NAME[$s]} | $(fmt "$m") | $(fmt "$(median "${CORE[$sc:$s]:-}")") | $(fmt "$(median "${ALL[$sc:$s]:-}")") | $([ "$s" = node ] && echo — || ratio "$m" "$node_m") | ${LOST[$sc:$s]:-—} / ${SENT[$sc:$s]:-—} |"
    done
  done
  echo
  echo "Core 0 is the whole server for 1 worker and Node (kernel work included);"
  echo "for 2 workers it is one of the server's two cores, and \"all cores\" counts"
  echo "both, the load generator and any other work on the machine. Target (issue 6): ≥6x Node, nothing lost,"
  echo "≤1.5 server-core µs per delivery."
  echo
  echo "<details><summary>Every run (loadgen output)</summary>"
  echo
  echo '```'
  cat "$RAW_LOG"
  echo '```'
  echo "</details>"
} >"$out"
echo >&2
sed -n '/^| scenario/,/^$/p' "$out"
echo "written to $out in $(( $(date +%s) - started )) s" >&2
