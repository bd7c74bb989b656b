/* loadgen_fanout: bench/loadgen's fan-out mode, one publisher and many
 * subscribers: the publishing window and the count of deliveries. */
#include "loadgen_fanout.h"

#include "loadgen.h"
#include "loadgen_frame.h"
#include "loadgen_payload.h"

lg_fanout_t lg_fo = {.sending = 1};

/* Fanout mode: subscriber c received its next message, which is message
 * number c->received (messages arrive in order on one connection). */
void lg_fanout_deliver(lg_conn_t *c) {
  if (c == lg_fo.publisher || c->received >= lg_fo.sent) {
    lg_conn_kill(c, 1); /* the publisher got one, or more came than were sent */
    return;
  }
  int *missing = &lg_fo.missing[c->received % (uint64_t)lg_opt.window];
  c->received++;
  lg_fo.received++;
  if (lg_run.measuring) {
    lg_run.msgs++;
    lg_run.bytes_in += lg_plain_len[0];
  }
  if (--*missing == 0) {
    /* In order too: message k is complete only after k-1 was. */
    while (lg_fo.done < lg_fo.sent &&
           lg_fo.missing[lg_fo.done % (uint64_t)lg_opt.window] == 0)
      lg_fo.done++;
  }
}

/* Fanout mode: the publisher sends while fewer than `window` messages are
 * still on their way to some subscriber. */
void lg_fanout_pump(void) {
  if (!lg_fo.sending || lg_fo.publisher->state != LG_ST_OPEN)
    return;
  int op = lg_opt.binary ? 2 : 1;
  int queued = 0;
  while (lg_fo.sent - lg_fo.done < (uint64_t)lg_opt.window) {
    lg_fo.missing[lg_fo.sent % (uint64_t)lg_opt.window] = lg_opt.conns;
    lg_put_frame(lg_fo.publisher, op, 0, lg_plain[0], lg_plain_len[0]);
    lg_fo.sent++;
    queued = 1;
  }
  if (queued)
    lg_flush_out(lg_fo.publisher);
}
