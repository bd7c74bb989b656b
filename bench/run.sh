#!/usr/bin/env bash
# Runs the benchmark scenarios against wslua and its peers and writes the
# table to bench/results/<date>.md (see "Benchmarks" in README.md).
# Usage: bench/run.sh [BUILD_DIR]      (make bench builds and calls this)
# Environment: BENCH_SECS (measured seconds per run, 5), BENCH_WARMUP (1),
#   BENCH_REPS (runs per server and scenario, 3), BENCH_PORT (first port,
#   19100), BENCH_ONLY (servers, e.g. "tcp wslua"), BENCH_SCENARIOS (names),
#   BENCH_LABEL (suffix for the results file, e.g. "after-writev"),
#   BENCH_REV (the wslua revision to name, when not run from a git tree),
#   BENCH_SCHED (fifo: server and load run SCHED_FIFO, the default as root;
#   none: ordinary scheduling). On a machine shared with other work, ordinary
#   priority (even nice -20) leaves each wake-up waiting milliseconds behind
#   it; SCHED_FIFO takes the two cores while a run lasts (the kernel's RT
#   throttling still leaves others 5%), and every run ends within a minute.
# Every server runs pinned to core 0, the load generator to core 1; runs are
# interleaved (A B C A B C ...) and each figure is the median of the runs.
# Loopback only; every run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${BENCH_SECS:-5}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PORT0=${BENCH_PORT:-19100}
SERVERS=(${BENCH_ONLY:-tcp wslua lws node python})
SCENARIOS=(${BENCH_SCENARIOS:-echo32_f1 echo32_f16 bin64k deflate_json handshake idle10k tls_echo})
SERVER_CPU=0
LOAD_CPU=1
SCHED=${BENCH_SCHED:-$([ "$(id -u)" -eq 0 ] && echo fifo || echo none)}
PIN_LOAD=(taskset -c $LOAD_CPU)
[ "$SCHED" = fifo ] && PIN_LOAD=(chrt -f 1 taskset -c $LOAD_CPU)
IDLE_CONNS=10000

LOADGEN=$BUILD/bench/loadgen
for f in "$LOADGEN" "$BUILD/bench/tcp_echo" "$BUILD/wslua"; do
  [ -x "$f" ] || { echo "run.sh: $f missing: make bench builds it" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "run.sh: needs 2 cores (server, load)" >&2; exit 1; }
# 10,000 connections need as many descriptors in the server and the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A NAME=([tcp]="raw TCP" [wslua]="wslua" [lws]="libwebsockets"
                 [node]="Node ws" [python]="Python websockets")

# Which servers can run here; a missing peer is reported, not fatal.
available() {
  case $1 in
    lws) [ -x "$BUILD/bench/lws_echo" ] ;;
    node) command -v node >/dev/null &&
            node -e "require.resolve('ws',{paths:['bench/node_modules','spec/interop/node_modules']})" 2>/dev/null ;;
    python) /usr/bin/python3 -c 'import websockets' 2>/dev/null ;;
    *) true ;;
  esac
}
ACTIVE=()
for s in "${SERVERS[@]}"; do
  if available "$s"; then ACTIVE+=("$s"); else echo "run.sh: skipping $s (not installed: scripts/deps.sh bench)" >&2; fi
done

TMP=$(mktemp -d)
PIDS=()
LGPID=
cleanup() {
  [ -z "$LGPID" ] || kill "$LGPID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# TLS scenarios: every server gets the same self-signed P-256 certificate.
CERT=$TMP/cert.pem KEY=$TMP/key.pem
case " ${SCENARIOS[*]} " in
  *" tls_"*) examples/wss/make-cert.sh "$TMP" >/dev/null ;;
esac

# start_server NAME PORT [tls]: starts it pinned to the server core; sets
# SPID. With tls, the server serves TLS (the raw floor: bench/peers/tls_echo).
start_server() {
  local cmd tls=()
  [ -z "${3:-}" ] || tls=("$CERT" "$KEY")
  case $1 in
    tcp) cmd=("$BUILD/bench/tcp_echo" "$2")
         [ -z "${3:-}" ] || cmd=("$BUILD/bench/tls_echo" "$2" "${tls[@]}") ;;
    wslua) cmd=("$BUILD/wslua" examples/echo/app.lua --listen "127.0.0.1:$2" --log-level warn)
           [ -z "${3:-}" ] || cmd+=(--tls-cert "$CERT" --tls-key "$KEY") ;;
    lws) cmd=("$BUILD/bench/lws_echo" "$2" "${tls[@]}") ;;
    node) cmd=(node bench/peers/node_ws_echo.js "$2" "${tls[@]}") ;;
    python) cmd=(/usr/bin/python3 bench/peers/py_websockets_echo.py "$2" "${tls[@]}") ;;
  esac
  taskset -c $SERVER_CPU "${cmd[@]}" >>"$TMP/$1.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  # Node stays ordinary: its main thread waits on helper threads (zlib,
  # GC), and under SCHED_FIFO on one core that wait never ends.
  [ "$SCHED" != fifo ] || [ "$1" = node ] || chrt -f -p 1 "$SPID" >/dev/null
  for _ in $(seq 100); do
    ss -Hltn "sport = :$2" | grep -q LISTEN && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not listen on $2" >&2
  return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 120); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# field LINE KEY: the value of key=value in a loadgen line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

# Scenario definitions: loadgen arguments, the figure read, its unit.
declare -A ARGS=(
  [echo32_f1]="-c 100 -s 32 -f 1"
  [echo32_f16]="-c 100 -s 32 -f 16"
  [bin64k]="-c 10 -s 65536 -b -f 1"
  [deflate_json]="-c 100 -s 512 --json --deflate -f 1"
  [handshake]="--handshake -c 50 --sources 64"
  [tls_echo]="-c 100 -s 32 -f 16 --tls"
)
declare -A METRIC=([echo32_f1]=msg_per_s [echo32_f16]=msg_per_s [bin64k]=mb_per_s
                   [deflate_json]=msg_per_s [handshake]=msg_per_s [idle10k]=rss_per_conn
                   [tls_echo]=msg_per_s)
declare -A UNIT=([echo32_f1]="msg/s" [echo32_f16]="msg/s" [bin64k]="MB/s"
                 [deflate_json]="msg/s" [handshake]="sessions/s" [idle10k]="B RSS/conn"
                 [tls_echo]="msg/s")
declare -A TITLE=(
  [echo32_f1]="echo 32 B, 100 conns, 1 in flight"
  [echo32_f16]="echo 32 B, 100 conns, 16 in flight"
  [bin64k]="binary 64 KiB, 10 conns, 1 in flight"
  [deflate_json]="JSON ~512 B, deflate, 100 conns"
  [handshake]="handshakes: 50 loops of connect, upgrade, echo, close"
  [idle10k]="10,000 idle connections"
  [tls_echo]="TLS echo 32 B, 100 conns, 16 in flight (raw: a TLS echo)"
)
declare -A TARGET=(
  [echo32_f1]="≥0.9x TCP"
  [echo32_f16]="≥0.7x TCP, ≥8x lws"
  [bin64k]="≥0.7x TCP"
  [deflate_json]="≥5x Node"
  [handshake]="≥0.8x lws, ≥2.5x Node"
  [idle10k]="≤1 KiB/conn"
  [tls_echo]="—"
)

# Handshakes leave TIME_WAIT sockets for 60 s: the server closes first, and
# 64 source addresses (127.0.0.1-64) keep the 4-tuples of later runs fresh.

# Whether a server takes part in a scenario: the raw TCP echo has no upgrade
# and no deflate, so it is the floor only where the bytes are the same.
# Over TLS the floor is the raw TLS echo (bench/peers/tls_echo).
applies() {
  case $1:$2 in
    deflate_json:tcp | handshake:tcp) return 1 ;;
    tls_*:tcp) [ -x "$BUILD/bench/tls_echo" ] ;;
  esac
}

# TLS echo: 16 messages in flight, as in echo32_f16, so that the figure is
# the server's cost per message (parsing, the handler, framing, and how many
# TLS records and writes it makes of a burst) rather than round trips: with
# 1 in flight every message is a record each way and the client's own TLS
# work weighs as much as the server's.

declare -A VALS P50 P99 CORE ERRS
port=$PORT0

# A fresh server for every run, alone on its core; sets LINE.
run_load() { # scenario server
  local sc=$1 s=$2 args path=/ raw=() p=$port
  port=$((port + 1))
  args=${ARGS[$sc]}
  [ "$s" = tcp ] && raw=(--raw)
  [ "$s" = wslua ] && [ "$sc" = deflate_json ] && path=/deflate
  local tls=
  [ "${sc#tls_}" = "$sc" ] || tls=tls
  LINE="error=start"
  start_server "$s" "$p" $tls || return 0
  # shellcheck disable=SC2086
  "${PIN_LOAD[@]}" timeout $((${SECS%.*} + ${WARM%.*} + 60)) "$LOADGEN" --port "$p" \
    --path "$path" "${raw[@]}" $args -d "$SECS" -w "$WARM" --cpu $SERVER_CPU \
    >"$TMP/load.out" 2>&1 &
  LGPID=$!
  wait "$LGPID" || true
  LGPID=
  LINE=$(tail -1 "$TMP/load.out")
  stop_server "$SPID"
}

# Idle memory: a fresh server, its RSS before and while holding the
# connections, (after - before) / connections.
run_idle() { # server -> sets LINE to "rss_per_conn=N ..."
  local s=$1 p=$port raw=() before after
  port=$((port + 1))
  [ "$s" = tcp ] && raw=(--raw)
  LINE="error=start"
  start_server "$s" "$p" || return 0
  local pid=$SPID
  sleep 0.5
  before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  "${PIN_LOAD[@]}" timeout 90 "$LOADGEN" --port "$p" "${raw[@]}" --idle \
    -c $IDLE_CONNS -d 2 >"$TMP/idle.out" 2>&1 &
  LGPID=$!
  for _ in $(seq 600); do grep -q '^ready' "$TMP/idle.out" && break; sleep 0.1; done
  sleep 1.5
  after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  wait "$LGPID" || true
  LGPID=
  stop_server "$pid"
  LINE="rss_per_conn=$(( (after - before) * 1024 / IDLE_CONNS )) rss_before_kb=$before rss_after_kb=$after | $(tail -1 "$TMP/idle.out")"
}

# The machine may be shared: say how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
RAW_LOG=$TMP/runs.txt
: >"$RAW_LOG"
started=$(date +%s)
for sc in "${SCENARIOS[@]}"; do
  [ -n "${METRIC[$sc]:-}" ] || { echo "run.sh: unknown scenario $sc" >&2; exit 1; }
done

for sc in "${SCENARIOS[@]}"; do
  echo "== ${TITLE[$sc]}" >&2
  for rep in $(seq "$REPS"); do
    for s in "${ACTIVE[@]}"; do
      applies "$sc" "$s" || continue
      if [ "$sc" = idle10k ]; then
        run_idle "$s"
        line=$LINE
      else
        run_load "$sc" "$s"
        line=$LINE
      fi
      echo "$sc $s $rep $line" >>"$RAW_LOG"
      v=$(field "$line" "${METRIC[$sc]}")
      printf '   %-8s run %d: %s %s\n' "$s" "$rep" "${v:-failed}" "${UNIT[$sc]}" >&2
      [ -n "$v" ] || continue
      VALS[$sc:$s]+="$v "
      P50[$sc:$s]+="$(field "$line" p50_us) "
      P99[$sc:$s]+="$(field "$line" p99_us) "
      CORE[$sc:$s]+="$(field "$line" core_us_per_msg) "
      e=$(field "$line" errors)
      ERRS[$sc:$s]=$(( ${ERRS[$sc:$s]:-0} + ${e:-0} ))
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
fmt() { # a number, readably
  awk -v v="$1" 'BEGIN { if (v == "") print "—"; else if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.2f", v }'
}
ratio() { # a / b, or — when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "—"; else printf "%.2fx", a / b }'
}

cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
day=$(date +%Y-%m-%d)
out=bench/results/$day${BENCH_LABEL:+-$BENCH_LABEL}.md
mkdir -p bench/results
ver() { "$@" 2>/dev/null | head -1 || echo "?"; }
{
  echo "# wslua benchmarks, $day${BENCH_LABEL:+ ($BENCH_LABEL)}"
  echo
  echo "Machine: $(nproc) cores, $cpu_model, Linux $(uname -r)."
  echo "wslua ${BENCH_REV:-$(git describe --always --dirty 2>/dev/null || echo '?')}; peers: libwebsockets $(pkg-config --modversion libwebsockets 2>/dev/null || echo '—'),"
  echo "Node $(ver node --version) with ws $(node -p "require(require.resolve('ws/package.json',{paths:['bench/node_modules','spec/interop/node_modules']})).version" 2>/dev/null || echo '—'),"
  echo "Python websockets $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)' 2>/dev/null || echo '—')."
  echo "Server on core $SERVER_CPU, load generator on core $LOAD_CPU (scheduling: $SCHED); ${SECS} s measured after ${WARM} s warm-up;"
  echo "median of $REPS interleaved runs. Ratios are wslua ÷ the other (for RSS, lower is better)."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the"
  echo "machine makes every figure noisier; interleaving spreads it evenly). With scheduling fifo,"
  echo "the load generator and every server but Node run SCHED_FIFO: Node cannot (its main"
  echo "thread waits on helper threads that never run then), so on a busy machine its figures"
  echo "are understated."
  echo
  echo "| scenario | unit | raw TCP | wslua | libwebsockets | Node ws | Python websockets | wslua÷TCP | wslua÷lws | wslua÷Node | wslua÷Python | target |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for sc in "${SCENARIOS[@]}"; do
    declare -A M=()
    for s in tcp wslua lws node python; do M[$s]=$(median "${VALS[$sc:$s]:-}"); done
    echo "| ${TITLE[$sc]} | ${UNIT[$sc]} | $(fmt "${M[tcp]}") | $(fmt "${M[wslua]}") | $(fmt "${M[lws]}") | $(fmt "${M[node]}") | $(fmt "${M[python]}") | $([ "$sc" = idle10k ] && echo "—" || ratio "${M[wslua]}" "${M[tcp]}") | $(ratio "${M[wslua]}" "${M[lws]}") | $(ratio "${M[wslua]}" "${M[node]}") | $(ratio "${M[wslua]}" "${M[python]}") | ${TARGET[$sc]} |"
    unset M
  done
  echo "| publish to 1,000 / 10,000 subscribers | deliveries/s | see bench/fanout.sh and results/<date>-fanout.md | | | | | | | | | ≥6x Node, ≤1.5 µs/delivery |"
  echo
  echo "Latency (median of runs' p50 / p99, µs) and server-core µs per message"
  echo "(from /proc/stat of core $SERVER_CPU, kernel work included); errors summed over runs:"
  echo
  echo "| scenario | server | p50 µs | p99 µs | core µs/msg | errors |"
  echo "|---|---|---|---|---|---|"
  for sc in "${SCENARIOS[@]}"; do
    [ "$sc" = idle10k ] && continue
    for s in tcp wslua lws node python; do
      [ -n "${VALS[$sc:$s]:-}" ] || continue
      echo "| ${TITLE[$sc]} | ${NAME[$s]} | $(fmt "$(median "${P50[$sc:$s]}")") | $(fmt "$(median "${P99[$sc:$s]}")") | $(fmt "$(median "${CORE[$sc:$s]}")") | ${ERRS[$sc:$s]:-0} |"
    done
  done
  echo
  echo "The raw TCP echo returns the load generator's own masked frames byte for"
  echo "byte (no upgrade), so the client does the same work per message; with two"
  echo "cores the client can be the limit of that floor (see README). Its idle RSS"
  echo "is user space only (kernel socket buffers are not in RSS for any server)."
  case " ${SCENARIOS[*]} " in
    *" tls_"*)
      echo
      echo "TLS echo: every server has the same self-signed P-256 (ECDSA) certificate"
      echo "(examples/wss/make-cert.sh); the client, bench/loadgen --tls (OpenSSL"
      echo "$(openssl version 2>/dev/null | cut -d' ' -f2 || echo '?'), nothing verified), offers OpenSSL's defaults; the protocol and"
      echo "cipher each server chose are the runs' tls= field below. The raw column"
      echo "is bench/peers/tls_echo: the same frames through a TLS echo." ;;
  esac
  echo
  echo "<details><summary>Every run (loadgen output)</summary>"
  echo
  echo '```'
  cat "$RAW_LOG"
  echo '```'
  echo "</details>"
} >"$out"
echo >&2
sed -n '/^| scenario | unit/,/^$/p' "$out"
echo "written to $out in $(( $(date +%s) - started )) s" >&2
