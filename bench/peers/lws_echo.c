/* lws_echo: an echo server with libwebsockets, as its examples write one.
 * Each received fragment goes back as a fragment of the same message: one
 * lws_write per writeable callback, as lws requires. With a certificate
 * and key, TLS (wss://) through lws's own OpenSSL binding. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

/* A received piece, kept with LWS_PRE bytes of headroom for the header. */
typedef struct piece {
  struct piece *next;
  size_t len;
  int first, final, binary;
  unsigned char data[];
} piece_t;

typedef struct {
  piece_t *head, *tail;
  size_t queued;
  int paused;
} session_t;

#define MAX_QUEUED (4u << 20)

static volatile int interrupted;

static int on_event(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  session_t *s = user;
  switch (reason) {
  case LWS_CALLBACK_RECEIVE: {
    piece_t *p = malloc(sizeof *p + LWS_PRE + len);
    if (!p)
      return -1;
    p->next = NULL;
    p->len = len;
    p->first = lws_is_first_fragment(wsi);
    p->final = lws_is_final_fragment(wsi);
    p->binary = lws_frame_is_binary(wsi);
    memcpy(p->data + LWS_PRE, in, len);
    if (s->tail)
      s->tail->next = p;
    else
      s->head = p;
    s->tail = p;
    s->queued += len;
    if (s->queued > MAX_QUEUED && !s->paused) {
      s->paused = 1;
      lws_rx_flow_control(wsi, 0);
    }
    lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    piece_t *p = s->head;
    if (!p)
      break;
    int flags = lws_write_ws_flags(
        p->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, p->first, p->final);
    if (lws_write(wsi, p->data + LWS_PRE, p->len,
                  (enum lws_write_protocol)flags) < (int)p->len)
      return -1;
    s->head = p->next;
    if (!s->head)
      s->tail = NULL;
    s->queued -= p->len;
    free(p);
    if (s->paused && s->queued < MAX_QUEUED / 2) {
      s->paused = 0;
      lws_rx_flow_control(wsi, 1);
    }
    if (s->head)
      lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_CLOSED:
    while (s->head) {
      piece_t *p = s->head;
      s->head = p->next;
      free(p);
    }
    s->tail = NULL;
    break;
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", on_event, sizeof(session_t), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL}};

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 4) {
    fprintf(stderr,
            "usage: lws_echo PORT [CERT KEY]   (listens on 127.0.0.1)\n");
    return 2;
  }
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = atoi(argv[1]);
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.extensions = extensions;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  info.pt_serv_buf_size = 65536 + LWS_PRE;
  if (argc == 4) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = argv[2];
    info.ssl_private_key_filepath = argv[3];
  }
  lws_set_log_level(LLL_ERR, NULL);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "lws_echo: cannot create the context\n");
    return 1;
  }
  while (!interrupted && lws_service(ctx, 0) >= 0)
    ;
  lws_context_destroy(ctx);
  return 0;
}
