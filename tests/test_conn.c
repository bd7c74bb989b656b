/* The memory an idle connection costs in C (issue 6: 10,000 idle WebSocket
 * connections at most 1 KiB each, Lua objects included): the sizes of the
 * structs every open connection carries, printed, and held to a budget so
 * that a field added without thought shows here. */
#include "net/conn_internal.h"

#include "test.h"

int main(void) {
  printf("sizeof(struct wsl_conn) %zu (uv_tcp_t %zu, wsl_frame_parser_t %zu, "
         "wsl_timer_t %zu)\n",
         sizeof(struct wsl_conn), sizeof(uv_tcp_t), sizeof(wsl_frame_parser_t),
         sizeof(wsl_timer_t));
  printf("while speaking HTTP: wsl_http_parser_t %zu; while dialling: "
         "wsl_dial_state_t %zu\n",
         sizeof(wsl_http_parser_t), sizeof(wsl_dial_state_t));
  /* 656 on x86_64 with libuv 1.44 (a uv_tcp_t is 248 of it); was 2,296.
   * The output batching (cork of references, flush slot) is 16 of it. */
  CHECK(sizeof(struct wsl_conn) <= sizeof(uv_tcp_t) + 408);
  CHECK(sizeof(wsl_frame_parser_t) <= 88);
  CHECK(sizeof(wsl_timer_t) <= 16);
  return TEST_REPORT();
}
