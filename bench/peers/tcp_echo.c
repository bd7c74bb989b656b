/* tcp_echo: the floor loopback allows, a raw TCP echo (epoll, one thread).
 * Bytes come back as they came; WebSocket framing is not looked at. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "echo_peer.h"

/* One connection: what could not be written yet. While something is
 * pending, the connection is not read (backpressure, as an echo must). */
typedef struct {
  int fd;
  echo_pend_t pend;
} conn_t;

static char buf[256 * 1024];

static void conn_close(void *p) {
  conn_t *c = p;
  close(c->fd);
  free(c->pend.buf);
  free(c);
}

static void on_accept(int fd) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->fd = fd;
  echo_watch(fd, c, EPOLL_CTL_ADD, EPOLLIN);
}

/* Writes n bytes; keeps the rest for EPOLLOUT. Returns -1 on error. */
static int echo(conn_t *c, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        return -1;
      return echo_pend_keep(&c->pend, c->fd, c, p, n);
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int on_readable(void *p) {
  conn_t *c = p;
  for (int rounds = 0; rounds < 16 && !c->pend.buf; rounds++) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0)
      return -1;
    if (n < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (echo(c, buf, (size_t)n) < 0)
      return -1;
    if ((size_t)n < sizeof buf)
      break;
  }
  return 0;
}

static int on_writable(void *p) {
  conn_t *c = p;
  while (c->pend.off < c->pend.len) {
    ssize_t w =
        write(c->fd, c->pend.buf + c->pend.off, c->pend.len - c->pend.off);
    if (w < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->pend.off += (size_t)w;
  }
  echo_pend_done(&c->pend, c->fd, c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tcp_echo PORT   (listens on 127.0.0.1)\n");
    return 2;
  }
  static const echo_handlers_t h = {on_accept, on_readable, on_writable,
                                    conn_close};
  return echo_serve("tcp_echo", argv[1], &h);
}
