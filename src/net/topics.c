/* Topics of one loop: a hash table of topics, each with a doubly linked
 * list of its subscriptions; every subscription is also on its
 * connection's list, so leaving one topic or all of them costs no search
 * among the other subscribers. */
#include "net/topics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn_internal.h"

typedef struct topic topic_t;

struct wsl_sub {
  topic_t *topic;
  wsl_conn_t *conn;
  unsigned group;
  struct wsl_sub *tprev, *tnext; /* the topic's subscribers */
  struct wsl_sub *cprev, *cnext; /* the connection's topics */
};

struct topic {
  topic_t *next; /* in its bucket */
  wsl_topics_t *registry;
  uint32_t hash;
  struct wsl_sub *head, *tail;
  size_t count;
  size_t len;
  char name[];
};

struct wsl_topics {
  topic_t **buckets;
  size_t nbuckets; /* a power of two */
  size_t ntopics;
  wsl_topics_interest_cb on_interest;
  void *ud;
};

static uint32_t hash_name(const char *s, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

wsl_topics_t *wsl_topics_new(void) {
  wsl_topics_t *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->nbuckets = 64;
  t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
  if (t->buckets == NULL) {
    free(t);
    return NULL;
  }
  return t;
}

void wsl_topics_on_interest(wsl_topics_t *t, wsl_topics_interest_cb cb,
                            void *ud) {
  t->on_interest = cb;
  t->ud = ud;
}

static topic_t *find(const wsl_topics_t *t, const char *name, size_t len,
                     uint32_t h) {
  for (topic_t *p = t->buckets[h & (t->nbuckets - 1)]; p; p = p->next)
    if (p->hash == h && p->len == len && memcmp(p->name, name, len) == 0)
      return p;
  return NULL;
}

/* Doubles the table; on failure it stays as it is (only slower). */
static void grow(wsl_topics_t *t) {
  size_t n = t->nbuckets * 2;
  topic_t **b = calloc(n, sizeof *b);
  if (b == NULL)
    return;
  for (size_t i = 0; i < t->nbuckets; i++) {
    topic_t *p = t->buckets[i];
    while (p) {
      topic_t *next = p->next;
      p->next = b[p->hash & (n - 1)];
      b[p->hash & (n - 1)] = p;
      p = next;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

static topic_t *create(wsl_topics_t *t, const char *name, size_t len,
                       uint32_t h) {
  topic_t *p = calloc(1, sizeof *p + len + 1);
  if (p == NULL)
    return NULL;
  p->registry = t;
  p->hash = h;
  p->len = len;
  memcpy(p->name, name, len);
  if (t->ntopics >= t->nbuckets)
    grow(t);
  size_t i = h & (t->nbuckets - 1);
  p->next = t->buckets[i];
  t->buckets[i] = p;
  t->ntopics++;
  return p;
}

static void destroy(topic_t *p) {
  wsl_topics_t *t = p->registry;
  topic_t **pp = &t->buckets[p->hash & (t->nbuckets - 1)];
  while (*pp != p)
    pp = &(*pp)->next;
  *pp = p->next;
  t->ntopics--;
  free(p);
}

/* Unlinks a subscription from both lists and frees it; the topic goes with
 * its last subscriber. */
static void drop(struct wsl_sub *s) {
  topic_t *p = s->topic;
  wsl_conn_t *c = s->conn;
  if (s->tprev)
    s->tprev->tnext = s->tnext;
  else
    p->head = s->tnext;
  if (s->tnext)
    s->tnext->tprev = s->tprev;
  else
    p->tail = s->tprev;
  /* A connection with topics has its rare part. */
  if (s->cprev)
    s->cprev->cnext = s->cnext;
  else
    c->rare->subs = s->cnext;
  if (s->cnext)
    s->cnext->cprev = s->cprev;
  else
    c->rare->subs_tail = s->cprev;
  free(s);
  if (--p->count == 0) {
    wsl_topics_t *t = p->registry;
    if (t->on_interest)
      t->on_interest(t->ud, p->name, p->len, 0);
    destroy(p);
  }
}

static struct wsl_sub *first_sub(const wsl_conn_t *c) {
  return c->rare ? c->rare->subs : NULL;
}

static struct wsl_sub *find_sub(const wsl_conn_t *c, const topic_t *p) {
  for (struct wsl_sub *s = first_sub(c); s; s = s->cnext)
    if (s->topic == p)
      return s;
  return NULL;
}

int wsl_topics_subscribe(wsl_topics_t *t, wsl_conn_t *c, const char *topic,
                         size_t len, unsigned group) {
  if (c->handles_closing || c->state == WSL_CONN_CLOSED)
    return UV_ECANCELED;
  if (first_sub(c) && first_sub(c)->topic->registry != t)
    return UV_EINVAL;
  uint32_t h = hash_name(topic, len);
  topic_t *p = find(t, topic, len, h);
  if (p && find_sub(c, p))
    return 0;
  wsl_conn_rare_t *r = wsl__conn_rare(c);
  struct wsl_sub *s = r ? calloc(1, sizeof *s) : NULL;
  if (s == NULL)
    return UV_ENOMEM;
  int fresh = p == NULL;
  if (fresh && (p = create(t, topic, len, h)) == NULL) {
    free(s);
    return UV_ENOMEM;
  }
  s->topic = p;
  s->conn = c;
  s->group = group;
  s->tprev = p->tail;
  if (p->tail)
    p->tail->tnext = s;
  else
    p->head = s;
  p->tail = s;
  p->count++;
  s->cprev = r->subs_tail;
  if (r->subs_tail)
    r->subs_tail->cnext = s;
  else
    r->subs = s;
  r->subs_tail = s;
  if (fresh && t->on_interest)
    t->on_interest(t->ud, p->name, p->len, 1);
  return 1;
}

int wsl_topics_unsubscribe(wsl_topics_t *t, wsl_conn_t *c, const char *topic,
                           size_t len) {
  topic_t *p = find(t, topic, len, hash_name(topic, len));
  struct wsl_sub *s = p ? find_sub(c, p) : NULL;
  if (s == NULL)
    return 0;
  drop(s);
  return 1;
}

void wsl__topics_leave_all(wsl_conn_t *c) {
  while (first_sub(c))
    drop(first_sub(c));
}

void wsl_topics_free(wsl_topics_t *t) {
  if (t == NULL)
    return;
  t->on_interest = NULL;
  for (size_t i = 0; i < t->nbuckets; i++)
    while (t->buckets[i])
      drop(t->buckets[i]->head); /* the last one frees the topic */
  free(t->buckets);
  free(t);
}

int wsl_topics_publish(wsl_topics_t *t, const char *topic, size_t len,
                       unsigned group, int opcode, const void *data,
                       size_t data_len, size_t *sent) {
  *sent = 0;
  topic_t *p = find(t, topic, len, hash_name(topic, len));
  if (p == NULL)
    return 0;
  wsl_broadcast_t *b = wsl_broadcast_new(opcode, data, data_len);
  if (b == NULL)
    return UV_ENOMEM;
  /* Sending calls no owner code (events come from the loop), so the list
   * cannot change under the walk; next is taken first all the same. */
  int r = 0;
  for (struct wsl_sub *s = p->head, *next; s; s = next) {
    next = s->tnext;
    if (group && s->group != group)
      continue;
    int e = wsl_conn_send_broadcast(s->conn, b);
    if (e == 0)
      (*sent)++;
    else if (e == UV_ENOMEM)
      r = UV_ENOMEM;
  }
  wsl_broadcast_free(b);
  return r;
}

size_t wsl_topics_count(const wsl_topics_t *t, const char *topic, size_t len,
                        unsigned group) {
  const topic_t *p = find(t, topic, len, hash_name(topic, len));
  if (p == NULL)
    return 0;
  if (group == 0)
    return p->count;
  size_t n = 0;
  for (const struct wsl_sub *s = p->head; s; s = s->tnext)
    n += s->group == group;
  return n;
}

const char *wsl_topics_next(const wsl_conn_t *c, void **it, size_t *len) {
  const struct wsl_sub *s =
      *it ? ((const struct wsl_sub *)*it)->cnext : first_sub(c);
  *it = (void *)s;
  if (s == NULL)
    return NULL;
  *len = s->topic->len;
  return s->topic->name;
}
