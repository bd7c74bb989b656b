/* echo_peer: what the C echo peers (tcp_echo, tls_echo) share: the
 * process setup, the loopback listener, the epoll loop and the output kept
 * while the socket is full. */
#ifndef ECHO_PEER_H
#define ECHO_PEER_H

#include <stddef.h>

/* What a peer does with its connections. A connection is the peer's own
 * pointer, never NULL (the listener's events carry NULL). */
typedef struct {
  /* A connection was accepted on fd (non-blocking, TCP_NODELAY set): the
   * peer makes its state and watches fd with echo_watch, or closes fd. */
  void (*on_accept)(int fd);
  /* Readable (or hung up), writable: 0, or -1 to have it closed. */
  int (*on_readable)(void *c);
  int (*on_writable)(void *c);
  /* Closes fd and frees everything c holds. */
  void (*on_close)(void *c);
} echo_handlers_t;

/* Output that could not be written yet. While some is pending, the
 * connection is watched for writability only: it is not read
 * (backpressure, as an echo must). */
typedef struct {
  char *buf; /* NULL when nothing is pending */
  size_t len, off;
} echo_pend_t;

/* Keeps the n bytes at p and watches fd (connection c) for writability
 * only. Returns 0, or -1 when out of memory. */
int echo_pend_keep(echo_pend_t *pd, int fd, void *c, const char *p, size_t n);

/* Everything pending went out: frees it and watches fd for reads again. */
void echo_pend_done(echo_pend_t *pd, int fd, void *c);

/* epoll_ctl(op) for fd with c as the event's pointer. */
void echo_watch(int fd, void *c, int op, unsigned events);

/* Raises the descriptor limit to the hard one, ignores SIGPIPE, listens
 * on 127.0.0.1:port (non-blocking, backlog 4096) and accepts, reads and
 * writes until killed: writability is handled before readability, so
 * pending output goes out first. Returns 1 after perror("NAME: ...") when
 * it cannot listen. */
int echo_serve(const char *name, const char *port, const echo_handlers_t *h);

#endif
