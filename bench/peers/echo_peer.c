/* echo_peer: what the C echo peers (tcp_echo, tls_echo) share: the
 * process setup, the loopback listener, the epoll loop and the output kept
 * while the socket is full. */
#define _GNU_SOURCE
#include "echo_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

static int epfd;

static int echo_listen(const char *name, int port) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    char what[64];
    snprintf(what, sizeof what, "%s: bind/listen", name);
    perror(what);
    return -1;
  }
  epfd = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  return lfd;
}

void echo_watch(int fd, void *c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, op, fd, &ev);
}

int echo_pend_keep(echo_pend_t *pd, int fd, void *c, const char *p, size_t n) {
  pd->buf = malloc(n);
  if (!pd->buf)
    return -1;
  memcpy(pd->buf, p, n);
  pd->len = n;
  pd->off = 0;
  echo_watch(fd, c, EPOLL_CTL_MOD, EPOLLOUT);
  return 0;
}

void echo_pend_done(echo_pend_t *pd, int fd, void *c) {
  free(pd->buf);
  pd->buf = NULL;
  echo_watch(fd, c, EPOLL_CTL_MOD, EPOLLIN);
}

/* Takes every connection waiting: the listener is level-triggered, but
 * one wake-up per connection would cost a round of epoll_wait each. */
static void on_accept(int lfd, const echo_handlers_t *h) {
  int fd, one = 1;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    h->on_accept(fd);
  }
}

int echo_serve(const char *name, const char *port, const echo_handlers_t *h) {
  int lfd = echo_listen(name, atoi(port));
  if (lfd < 0)
    return 1;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      void *c = evs[i].data.ptr;
      if (!c) {
        on_accept(lfd, h);
        continue;
      }
      int r = 0;
      if (evs[i].events & EPOLLOUT)
        r = h->on_writable(c);
      if (r == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        r = h->on_readable(c);
      if (r < 0)
        h->on_close(c);
    }
  }
}
