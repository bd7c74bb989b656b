/* loadgen_upgrade: the HTTP upgrade of bench/loadgen's connections
 * (RFC 6455 §4.1): the request with a fresh key, and the 101 response with
 * the key's answer and the extension the server chose. */
#ifndef LOADGEN_UPGRADE_H
#define LOADGEN_UPGRADE_H

#include <stddef.h>

#include "loadgen_conn.h"

/* Queues and flushes the upgrade request (the publisher's on --pubpath,
 * with --deflate offering permessage-deflate); c becomes upgrading. */
void lg_upgrade_send(lg_conn_t *c);

/* Parses the response headers in c->hbuf (hdr_end bytes, through the blank
 * line): 0 for a 101 with the right Sec-WebSocket-Accept (with deflate: one
 * that accepted permessage-deflate, the inflate stream then made), -1
 * otherwise. */
int lg_upgrade_parse(lg_conn_t *c, size_t hdr_end);

#endif
