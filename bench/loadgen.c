/* loadgen: a WebSocket echo load generator (epoll, one thread, no libuv):
 * the command line, the run's phases and the report. The connections are in
 * loadgen_conn.c, their frames in loadgen_frame.c, the upgrade in
 * loadgen_upgrade.c, TLS in loadgen_tls.c, fan-out in loadgen_fanout.c, the
 * messages in loadgen_payload.c and the measurements in loadgen_stats.c. */
#define _GNU_SOURCE
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen_conn.h"
#include "loadgen_fanout.h"
#include "loadgen_payload.h"
#include "loadgen_stats.h"
#include "loadgen_tls.h"
#include "loadgen_util.h"

/*
 * Modes:
 *   echo       each connection keeps `inflight` messages outstanding: every
 *              echo that comes back is answered by a new message;
 *   idle       connections are opened and upgraded, then only held (pings
 *              answered) so the server's memory can be read;
 *   handshake  `conns` loops of connect, upgrade, one echo, close;
 *   fanout     `conns` subscribers that only receive (each message checked
 *              and counted) and one publisher on `pubpath` sending the same
 *              payload; message k+1 leaves only when every subscriber has
 *              received message k+1-window, so nothing piles up unbounded.
 *              At the end the publisher stops and the subscribers receive
 *              the rest (until 5 s pass without one, 60 s at most):
 *              lost = sent x conns - received.
 * --raw drops the HTTP upgrade, for a plain TCP echo: the same masked frames
 * are sent, come back byte for byte and are read as masked frames, so the
 * client does the same work per message as against a WebSocket server (in
 * handshake mode: connect, one echo, our own close frame back, close).
 * --tls puts TLS under either (bench/loadgen_tls.c): each connection makes a
 * full handshake after connect, and every read and write goes through it.
 * One line of key=value results goes to stdout at the end.
 */

#define MAX_INFLIGHT 1024
#define MAX_PENDING_CONNECTS 256

lg_options_t lg_opt = {.host = "127.0.0.1",
                       .port = 9001,
                       .path = "/",
                       .conns = 100,
                       .size = 32,
                       .inflight = 1,
                       .duration = 5.0,
                       .warmup = 1.0,
                       .mode = LG_MODE_ECHO,
                       .sources = 1,
                       .cpu = -1,
                       .pubpath = "/pub",
                       .window = 16};
lg_run_t lg_run;
volatile sig_atomic_t lg_stop;

/* Every connection; in fanout mode the publisher is the last. */
static lg_conn_t *conns;
static int nconns;

/* When the run reached each phase, and the /proc/stat busy ticks at the
 * start and end of the measured span: of the --cpu core (busy, total) and
 * of every core, load included (all). */
typedef struct {
  uint64_t t0, t_ready, t_measure, t_end, t_stop;
  uint64_t busy0, total0, busy1, total1;
  uint64_t all0, all1;
  /* The load generator's own core, when it is pinned to one (-1 if not):
   * whether the client, rather than the server, was the limit. */
  int load_cpu;
  uint64_t lbusy0, ltotal0, lbusy1, ltotal1;
} span_t;

/* The one core this process may run on, or -1. */
static int pinned_cpu(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
    return -1;
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &set))
      return i;
  return -1;
}

/* Reads the busy ticks of the measured cores: at the start (end = 0) or
 * the end of the measured span. */
static void read_cores(span_t *s, int end) {
  uint64_t dummy;
  if (lg_opt.cpu == -1)
    return;
  if (end) {
    s->busy1 = lg_cpu_busy_ticks(lg_opt.cpu, &s->total1);
    s->all1 = lg_cpu_busy_ticks(-2, &dummy);
    if (s->load_cpu >= 0)
      s->lbusy1 = lg_cpu_busy_ticks(s->load_cpu, &s->ltotal1);
  } else {
    s->busy0 = lg_cpu_busy_ticks(lg_opt.cpu, &s->total0);
    s->all0 = lg_cpu_busy_ticks(-2, &dummy);
    if (s->load_cpu >= 0)
      s->lbusy0 = lg_cpu_busy_ticks(s->load_cpu, &s->ltotal0);
  }
}

static void on_signal(int sig) {
  (void)sig;
  lg_stop = 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [options]\n"
          "  --host H --port P --path /p   server (loopback only)\n"
          "  -c N        connections (handshake mode: concurrent loops)\n"
          "  -s BYTES    payload size (default 32)\n"
          "  -b          binary messages (default text)\n"
          "  -f K        messages in flight per connection (default 1)\n"
          "  -d SECONDS  measured duration (default 5)\n"
          "  -w SECONDS  warm-up before measuring (default 1)\n"
          "  --deflate   offer permessage-deflate, send compressed messages\n"
          "  --json      payloads are JSON chat messages of about -s bytes\n"
          "  --idle      only hold the connections (prints 'ready' when up)\n"
          "  --handshake connect, upgrade, one echo, close, repeat\n"
          "  --fanout    -c subscribers on --path, one publisher on --pubpath\n"
          "  --pubpath /p  the publisher's path (default /pub)\n"
          "  --window W  fanout: messages not yet received by all (16)\n"
          "  --raw       no upgrade: frames to a plain TCP echo\n"
          "  --tls       TLS over every connection (nothing verified)\n"
          "  --sources K spread connections over 127.0.0.1..K\n"
          "  --cpu N     report /proc/stat busy time of cpu N (-1: all)\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  static const struct option lo[] = {
      {"host", 1, 0, 'H'},    {"port", 1, 0, 'p'},
      {"path", 1, 0, 'P'},    {"deflate", 0, 0, 'z'},
      {"idle", 0, 0, 'i'},    {"handshake", 0, 0, 'k'},
      {"raw", 0, 0, 'r'},     {"sources", 1, 0, 'S'},
      {"cpu", 1, 0, 'C'},     {"json", 0, 0, 'j'},
      {"help", 0, 0, 'h'},    {"fanout", 0, 0, 'F'},
      {"pubpath", 1, 0, 'U'}, {"window", 1, 0, 'W'},
      {"tls", 0, 0, 'T'},     {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "c:s:bf:d:w:h", lo, NULL)) != -1) {
    switch (ch) {
    case 'H':
      lg_opt.host = optarg;
      break;
    case 'p':
      lg_opt.port = atoi(optarg);
      break;
    case 'P':
      lg_opt.path = optarg;
      break;
    case 'c':
      lg_opt.conns = atoi(optarg);
      break;
    case 's':
      lg_opt.size = (size_t)strtoull(optarg, NULL, 10);
      break;
    case 'b':
      lg_opt.binary = 1;
      break;
    case 'f':
      lg_opt.inflight = atoi(optarg);
      break;
    case 'd':
      lg_opt.duration = atof(optarg);
      break;
    case 'w':
      lg_opt.warmup = atof(optarg);
      break;
    case 'z':
      lg_opt.deflate = 1;
      break;
    case 'j':
      lg_opt.json = 1;
      break;
    case 'i':
      lg_opt.mode = LG_MODE_IDLE;
      break;
    case 'k':
      lg_opt.mode = LG_MODE_HANDSHAKE;
      break;
    case 'r':
      lg_opt.raw = 1;
      break;
    case 'S':
      lg_opt.sources = atoi(optarg);
      break;
    case 'C':
      lg_opt.cpu = strcmp(optarg, "-1") == 0 ? -2 : atoi(optarg);
      break;
    case 'F':
      lg_opt.mode = LG_MODE_FANOUT;
      break;
    case 'U':
      lg_opt.pubpath = optarg;
      break;
    case 'W':
      lg_opt.window = atoi(optarg);
      break;
    case 'T':
      lg_opt.tls = 1;
      break;
    default:
      usage();
    }
  }
  if (lg_opt.conns < 1 || lg_opt.inflight < 1 ||
      lg_opt.inflight > MAX_INFLIGHT || lg_opt.duration <= 0 ||
      lg_opt.sources < 1 || lg_opt.sources > 250 || lg_opt.size > (64u << 20) ||
      lg_opt.window < 1 || lg_opt.window > 1 << 20 ||
      (lg_opt.mode == LG_MODE_FANOUT &&
       (lg_opt.deflate || lg_opt.json || lg_opt.raw)))
    usage();
  if (lg_opt.mode == LG_MODE_HANDSHAKE)
    lg_opt.inflight = 1;
  if (inet_pton(AF_INET, lg_opt.host, &lg_opt.addr.sin_addr) != 1 ||
      (ntohl(lg_opt.addr.sin_addr.s_addr) >> 24) != 127)
    lg_die("--host must be a 127.x.x.x address (loopback only)");
  lg_opt.addr.sin_family = AF_INET;
  lg_opt.addr.sin_port = htons((uint16_t)lg_opt.port);
}

/* Raises the descriptor limit, ignores SIGPIPE, makes the payloads, the
 * TLS context, the epoll instance and the connections (all dead). */
static void setup(void) {
  lg_rng_seed();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)lg_opt.conns + 17 > rl.rlim_cur)
      lg_die("more connections than open files allowed (ulimit -n)");
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  lg_payload_make(lg_opt.size, lg_opt.binary, lg_opt.json, lg_opt.deflate);
  if (lg_opt.tls && lgtls_init() < 0)
    lg_die("TLS setup");
  lg_run.epfd = epoll_create1(EPOLL_CLOEXEC);
  /* Fanout mode: one more connection, the publisher, opened last. */
  nconns = lg_opt.conns + (lg_opt.mode == LG_MODE_FANOUT);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (!conns || lg_run.epfd < 0)
    lg_die("setup");
  if (lg_opt.mode == LG_MODE_FANOUT) {
    lg_fo.publisher = &conns[lg_opt.conns];
    lg_fo.missing = calloc((size_t)lg_opt.window, sizeof *lg_fo.missing);
    if (!lg_fo.missing)
      lg_die("setup");
  }
  for (int i = 0; i < nconns; i++) {
    lg_conn_t *c = &conns[i];
    c->idx = i;
    c->fd = -1;
    c->state = LG_ST_DEAD;
    c->sent_ns = lg_xmalloc(sizeof(uint64_t) * (size_t)lg_opt.inflight);
    c->sent_var = lg_xmalloc(sizeof(uint16_t) * (size_t)lg_opt.inflight);
    c->sent_var[0] = 0;
  }
}

/* Waits up to 10 ms for events and hands them to the connections. */
static void dispatch(void) {
  struct epoll_event evs[512];
  int n = epoll_wait(lg_run.epfd, evs, 512, 10);
  if (n < 0 && errno != EINTR)
    lg_die("epoll_wait");
  for (int i = 0; i < n; i++) {
    lg_conn_t *c = evs[i].data.ptr;
    if (c->state == LG_ST_DEAD)
      continue;
    if (evs[i].events & EPOLLRDHUP)
      c->peer_fin = 1;
    if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
      lg_on_readable(c);
    if (c->state != LG_ST_DEAD && (evs[i].events & EPOLLOUT))
      lg_on_writable(c);
  }
}

/* Handshake mode: a finished (or failed) session starts the next. */
static void restart_sessions(uint64_t t) {
  for (int i = 0; i < lg_opt.conns; i++) {
    if (conns[i].state == LG_ST_DEAD)
      lg_conn_start(&conns[i]);
    else if (conns[i].got_close && t - conns[i].t_close > 2000000000ull)
      lg_conn_kill(&conns[i], 1); /* the server never closed TCP */
  }
}

/* The event loop, through every phase, until the measured span (and in
 * fanout mode the drain after it) is over or a signal came. */
static void run(span_t *s) {
  /* Phase 1: open every connection, a bounded number of connects at a time
   * so the server's accept backlog does not overflow. */
  s->t0 = lg_now_ns();
  uint64_t connect_deadline = s->t0 + 30000000000ull;
  int next = 0;
  int started = lg_opt.mode == LG_MODE_HANDSHAKE;
  uint64_t t_progress = 0, fo_last = 0; /* fanout: the drain at the end */
  if (started) {
    for (; next < lg_opt.conns; next++)
      lg_conn_start(&conns[next]);
    s->t_measure = lg_now_ns() + (uint64_t)(lg_opt.warmup * 1e9);
    s->t_end = s->t_measure + (uint64_t)(lg_opt.duration * 1e9);
  }
  while (!lg_stop) {
    while (!started && next < nconns &&
           lg_run.pending_connects < MAX_PENDING_CONNECTS)
      lg_conn_start(&conns[next++]);
    dispatch();
    uint64_t t = lg_now_ns();
    if (lg_opt.mode == LG_MODE_HANDSHAKE)
      restart_sessions(t);
    if (!started) {
      if (next == nconns && lg_run.pending_connects == 0) {
        started = 1;
        s->t_ready = t;
        if (lg_opt.mode == LG_MODE_IDLE) {
          printf("ready conns=%d errors=%" PRIu64 " secs=%.3f\n",
                 lg_run.open_conns, lg_run.errors, (double)(t - s->t0) / 1e9);
          fflush(stdout);
          s->t_measure = t;
        } else {
          s->t_measure = t + (uint64_t)(lg_opt.warmup * 1e9);
        }
        s->t_end = s->t_measure + (uint64_t)(lg_opt.duration * 1e9);
      } else if (t > connect_deadline) {
        fprintf(stderr, "loadgen: connections not up after 30 s\n");
        break;
      }
      continue;
    }
    if (lg_opt.mode == LG_MODE_FANOUT) {
      /* The server ran on_open (subscribe) before its 101, but give a
       * second worker time too: publishing starts 200 ms after all are up. */
      if (t - s->t_ready < 200000000ull)
        continue;
      if (lg_fo.sending && lg_run.measuring && t >= s->t_end) {
        /* Stop publishing, let the subscribers receive the rest. */
        lg_fo.sending = 0;
        s->t_stop = t_progress = t;
        fo_last = lg_fo.received;
        read_cores(s, 1);
        lg_run.measuring = 0;
      }
      if (!lg_fo.sending) {
        if (lg_fo.received != fo_last) {
          fo_last = lg_fo.received;
          t_progress = t;
        }
        if (lg_fo.received == lg_fo.sent * (uint64_t)lg_opt.conns ||
            t - t_progress > 5000000000ull || t - s->t_stop > 60000000000ull ||
            lg_run.open_conns < nconns)
          break;
        continue;
      }
      lg_fanout_pump();
    }
    if (!lg_run.measuring && t >= s->t_measure) {
      lg_run.measuring = 1;
      read_cores(s, 0);
      s->t_measure = t;
    }
    if (lg_run.measuring && t >= s->t_end)
      break;
  }
  if (lg_opt.mode != LG_MODE_FANOUT || lg_fo.sending) {
    s->t_stop = lg_now_ns();
    read_cores(s, 1);
  }
  lg_stop = 1;
}

/* Prints the one line of results; returns the exit status. */
static int report(const span_t *s) {
  double secs = s->t_stop > s->t_measure && s->t_measure
                    ? (double)(s->t_stop - s->t_measure) / 1e9
                    : 0;
  uint64_t count =
      lg_opt.mode == LG_MODE_HANDSHAKE ? lg_run.sessions : lg_run.msgs;
  printf("mode=%s%s%s conns=%d open=%d size=%zu inflight=%d secs=%.3f "
         "msgs=%" PRIu64 " msg_per_s=%.0f mb_per_s=%.2f p50_us=%.1f "
         "p99_us=%.1f p999_us=%.1f errors=%" PRIu64,
         lg_opt.mode == LG_MODE_ECHO     ? "echo"
         : lg_opt.mode == LG_MODE_IDLE   ? "idle"
         : lg_opt.mode == LG_MODE_FANOUT ? "fanout"
                                         : "handshake",
         lg_opt.raw ? "-raw" : "", lg_opt.tls ? "-tls" : "", lg_opt.conns,
         lg_run.open_conns, lg_opt.size, lg_opt.inflight, secs, count,
         secs > 0 ? (double)count / secs : 0,
         secs > 0 ? (double)lg_run.bytes_in / secs / 1e6 : 0,
         lg_hist_quantile(&lg_run.hist, 0.5) / 1e3,
         lg_hist_quantile(&lg_run.hist, 0.99) / 1e3,
         lg_hist_quantile(&lg_run.hist, 0.999) / 1e3, lg_run.errors);
  if (lg_opt.cpu != -1 && s->total1 > s->total0) {
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    double busy_us = (double)(s->busy1 - s->busy0) * tick_us;
    printf(" core_busy=%.3f core_us_per_msg=%.3f all_cores_us_per_msg=%.3f",
           (double)(s->busy1 - s->busy0) / (double)(s->total1 - s->total0),
           count ? busy_us / (double)count : 0,
           count ? (double)(s->all1 - s->all0) * tick_us / (double)count : 0);
    if (s->load_cpu >= 0 && s->ltotal1 > s->ltotal0)
      printf(" load_core_busy=%.3f load_core_us_per_msg=%.3f",
             (double)(s->lbusy1 - s->lbusy0) /
                 (double)(s->ltotal1 - s->ltotal0),
             count ? (double)(s->lbusy1 - s->lbusy0) * tick_us / (double)count
                   : 0);
  }
  if (lg_opt.deflate)
    printf(" compressed_replies=%" PRIu64, lg_run.zmsgs);
  if (lg_opt.mode == LG_MODE_FANOUT) {
    uint64_t expected = lg_fo.sent * (uint64_t)lg_opt.conns;
    printf(" window=%d sent=%" PRIu64 " expected=%" PRIu64 " received=%" PRIu64
           " lost=%" PRIu64,
           lg_opt.window, lg_fo.sent, expected, lg_fo.received,
           expected > lg_fo.received ? expected - lg_fo.received : 0);
  }
  if (lg_opt.tls)
    printf(" tls=%s", lg_run.tls_chosen[0] ? lg_run.tls_chosen : "none");
  if (lg_opt.mode == LG_MODE_IDLE)
    printf(" ready_secs=%.3f",
           s->t_ready ? (double)(s->t_ready - s->t0) / 1e9 : 0);
  printf("\n");
  return (lg_run.open_conns < nconns && lg_opt.mode != LG_MODE_HANDSHAKE) ||
                 (lg_opt.mode == LG_MODE_FANOUT &&
                  lg_fo.received != lg_fo.sent * (uint64_t)lg_opt.conns)
             ? 1
             : 0;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  setup();
  span_t s = {.load_cpu = pinned_cpu()};
  run(&s);
  return report(&s);
}
