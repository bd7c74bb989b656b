/* loadgen_fanout: bench/loadgen's fan-out mode, one publisher and many
 * subscribers: the publishing window and the count of deliveries. */
#ifndef LOADGEN_FANOUT_H
#define LOADGEN_FANOUT_H

#include <stdint.h>

#include "loadgen_conn.h"

/* The publisher (set up by main, NULL in other modes), messages sent,
 * messages every subscriber has received (`done`), deliveries per message
 * still missing (a ring of `window` counters), deliveries counted, and
 * whether the publisher still sends. */
typedef struct {
  lg_conn_t *publisher;
  uint64_t sent, done, received;
  int *missing;
  int sending;
} lg_fanout_t;

extern lg_fanout_t lg_fo;

/* Sends while fewer than `window` messages are still on their way to some
 * subscriber. */
void lg_fanout_pump(void);

/* Subscriber c received its next message, already checked. */
void lg_fanout_deliver(lg_conn_t *c);

#endif
