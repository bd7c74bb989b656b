/* tcp_echo: the floor loopback allows, a raw TCP echo (epoll, one thread).
 * Bytes come back as they came; WebSocket framing is not looked at. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* One connection: what could not be written yet. While something is
 * pending, the connection is not read (backpressure, as an echo must). */
typedef struct {
  int fd;
  char *pend;
  size_t pend_len, pend_off;
} conn_t;

static char buf[256 * 1024];
static int epfd;

static void conn_close(conn_t *c) {
  close(c->fd);
  free(c->pend);
  free(c);
}

static void watch(conn_t *c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, op, c->fd, &ev);
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
      c->pend = malloc(n);
      if (!c->pend)
        return -1;
      memcpy(c->pend, p, n);
      c->pend_len = n;
      c->pend_off = 0;
      watch(c, EPOLL_CTL_MOD, EPOLLOUT);
      return 0;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int on_readable(conn_t *c) {
  for (int rounds = 0; rounds < 16 && !c->pend; rounds++) {
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

static int on_writable(conn_t *c) {
  while (c->pend_off < c->pend_len) {
    ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (w < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->pend_off += (size_t)w;
  }
  free(c->pend);
  c->pend = NULL;
  watch(c, EPOLL_CTL_MOD, EPOLLIN);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tcp_echo PORT   (listens on 127.0.0.1)\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    perror("tcp_echo: bind/listen");
    return 1;
  }
  epfd = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn_t *nc = calloc(1, sizeof *nc);
          if (!nc) {
            close(fd);
            continue;
          }
          nc->fd = fd;
          watch(nc, EPOLL_CTL_ADD, EPOLLIN);
        }
        continue;
      }
      int r = 0;
      if (evs[i].events & EPOLLOUT)
        r = on_writable(c);
      if (r == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        r = on_readable(c);
      if (r < 0)
        conn_close(c);
    }
  }
}
