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
  printf("when needed: wsl_conn_rare_t %zu, wsl_conn_extra_t %zu\n",
         sizeof(wsl_conn_rare_t), sizeof(wsl_conn_extra_t));
  printf("while speaking HTTP: wsl_http_parser_t %zu; while dialling: "
         "wsl_dial_state_t %zu\n",
         sizeof(wsl_http_parser_t), sizeof(wsl_dial_state_t));
  /* 536 on x86_64 with libuv 1.44 (a uv_tcp_t is 248 of it), a 544-byte
   * malloc chunk; was 2,296, then 656 before the fields few connections
   * use moved to its rare part, then 616 before the frame parser pointed
   * at its limits, the peer's address lost its sockaddr, and the dial
   * state, a split control frame, ping_interval and a compressor of its
   * own moved to the extra part. The output batching (cork of references,
   * flush slot) is 16 of it. */
  CHECK(sizeof(struct wsl_conn) <= sizeof(uv_tcp_t) + 288);
  /* The rare part: every connection of a pub/sub server has one (its
   * topics), so it stays within a 64-byte chunk; the extra part too. */
  CHECK(sizeof(wsl_conn_rare_t) <= 48);
  CHECK(sizeof(wsl_conn_extra_t) <= 48);
  CHECK(sizeof(wsl_frame_parser_t) <= 64);
  CHECK(sizeof(wsl_timer_t) <= 16);
  return TEST_REPORT();
}
