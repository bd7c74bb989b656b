/* loadgen: the options and the run-wide counters every part of
 * bench/loadgen reads (defined in loadgen.c, which parses the command line,
 * runs the event loop and prints the report). */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen_stats.h"

/* The modes, described at the top of loadgen.c. */
enum { LG_MODE_ECHO, LG_MODE_IDLE, LG_MODE_HANDSHAKE, LG_MODE_FANOUT };

/* The command line, fixed once parse_args has run. */
typedef struct {
  const char *host;
  int port;
  const char *path;
  int conns;
  size_t size;
  int binary;
  int inflight;
  double duration;
  double warmup;
  int deflate;
  int mode;
  int raw;
  int sources;
  int cpu;
  int json;
  const char *pubpath;
  int window;
  int tls;
  struct sockaddr_in addr; /* host and port, checked to be loopback */
} lg_options_t;

/* What the run has counted so far. Counts (and the histogram) grow only
 * while `measuring`; errors grow until the run is stopping. */
typedef struct {
  int epfd;
  int measuring;
  uint64_t msgs, bytes_in, errors, sessions, zmsgs;
  lg_hist_t hist;
  int open_conns;       /* upgraded (or, raw, connected) and not yet dead */
  int pending_connects; /* started and not yet open or dead */
  char tls_chosen[96];  /* --tls: the protocol and cipher first chosen */
} lg_run_t;

extern lg_options_t lg_opt;
extern lg_run_t lg_run;
/* Set by SIGINT and SIGTERM, and at the end: connections dying from then
 * on are not errors. */
extern volatile sig_atomic_t lg_stop;

#endif
