/* Topics (publish/subscribe) of one event loop: topic name -> the set of
 * connections subscribed to it, and each connection's own list of topics.
 * A publish frames the message once (wsl_broadcast_t) and loops over the
 * subscribers in C: one call, whatever their number.
 *
 * Each subscription carries a group, a number the owner chooses (the Lua
 * layer: its endpoint); a publish to group 0 reaches every subscriber of
 * the topic, to any other group only that group's. A connection leaves all
 * its topics when it is freed (conn.c calls wsl__topics_leave_all).
 *
 * Single-threaded: a registry belongs to the thread of its loop. A bus that
 * carries topics across threads or machines hooks in through on_interest:
 * it learns when this registry gains its first subscriber of a topic and
 * loses its last, so it can follow interest, not traffic. */
#ifndef WSL_TOPICS_H
#define WSL_TOPICS_H

#include <stddef.h>

#include "net/conn.h"

typedef struct wsl_topics wsl_topics_t;

/* Called when a topic gets its first subscriber (interested = 1) and when
 * its last one leaves (0). It must not subscribe or unsubscribe. */
typedef void (*wsl_topics_interest_cb)(void *ud, const char *topic, size_t len,
                                       int interested);

wsl_topics_t *wsl_topics_new(void);
/* Drops every subscription; connections stay open. */
void wsl_topics_free(wsl_topics_t *t);
void wsl_topics_on_interest(wsl_topics_t *t, wsl_topics_interest_cb cb,
                            void *ud);

/* Returns 1 when c was subscribed now, 0 when it already was (its group is
 * left as it was), UV_ENOMEM, or UV_ECANCELED when c is closing. A
 * connection belongs to one registry: subscribing it in a second one is
 * UV_EINVAL. */
int wsl_topics_subscribe(wsl_topics_t *t, wsl_conn_t *c, const char *topic,
                         size_t len, unsigned group);
/* Returns 1 when c was subscribed, 0 when it was not. */
int wsl_topics_unsubscribe(wsl_topics_t *t, wsl_conn_t *c, const char *topic,
                           size_t len);

/* Queues one message (opcode WSL_OP_TEXT or WSL_OP_BINARY) for every open
 * subscriber of the topic in group (0: all); returns how many took it (not
 * those closing, nor those over their send-buffer limit). The frame is
 * built once, compressed once per compression setting, and shared. *sent
 * is set even on UV_ENOMEM. Returns 0 or UV_ENOMEM. */
int wsl_topics_publish(wsl_topics_t *t, const char *topic, size_t len,
                       unsigned group, int opcode, const void *data,
                       size_t data_len, size_t *sent);

/* Subscribers of the topic in group (0: all). */
size_t wsl_topics_count(const wsl_topics_t *t, const char *topic, size_t len,
                        unsigned group);

/* The topics of a connection, in the order they were subscribed: call with
 * *it = NULL, then again while it returns non-NULL (the name; *len set). */
const char *wsl_topics_next(const wsl_conn_t *c, void **it, size_t *len);

/* conn.c: the connection is being freed. */
void wsl__topics_leave_all(wsl_conn_t *c);

#endif
