/* Tests for src/proto/close.c: which codes a peer may send, parsing close
 * payloads (empty, 1 byte, bad code, bad UTF-8, good), and encoding with
 * the reason cut at a character boundary. */
#include "proto/close.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "test.h"

/* RFC 6455 §7.4 and the IANA registry, written as a table of what each
 * range is, independently of the code under test. */
static const struct {
  int lo, hi, valid;
} ranges[] = {
    {0, 999, 0},      /* not used */
    {1000, 1003, 1},  /* normal, going away, protocol error, unsupported */
    {1004, 1004, 0},  /* reserved */
    {1005, 1006, 0},  /* no status, abnormal: never on the wire */
    {1007, 1011, 1},  /* invalid data, policy, too big, extension, internal */
    {1012, 1014, 1},  /* service restart, try again later, bad gateway */
    {1015, 1015, 0},  /* TLS handshake: never on the wire */
    {1016, 2999, 0},  /* kept for the protocol */
    {3000, 3999, 1},  /* registered for libraries and frameworks */
    {4000, 4999, 1},  /* private use */
    {5000, 65535, 0}, /* not codes */
};

static void test_code_valid(void) {
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
    for (int c = ranges[i].lo; c <= ranges[i].hi; c++) {
      CHECK_EQ_INT(wsl_close_code_valid(c), ranges[i].valid);
      if (wsl_close_code_valid(c) != ranges[i].valid)
        fprintf(stderr, "  code %d\n", c);
    }
  }
  CHECK_EQ_INT(wsl_close_code_valid(-1), 0);
  CHECK_EQ_INT(wsl_close_code_valid(-1000), 0);
  CHECK_EQ_INT(wsl_close_code_valid(65536 + 1000), 0);
  CHECK_EQ_INT(wsl_close_code_valid(100000), 0);
}

/* One parse case: the payload, and what must come back. */
typedef struct {
  const char *payload;
  size_t len;
  int ret;
  int code;
  size_t reason_len; /* the reason is then payload + 2 */
} parse_case_t;

#define P(lit) lit, sizeof(lit) - 1

static const parse_case_t parse_cases[] = {
    {P(""), 0, 1005, 0},
    {P("\x03"), 1002, 0, 0},
    {P("\xE8"), 1002, 0, 0},
    {P("\x03\xE8"), 0, 1000, 0},
    {P("\x03\xE8"
       "bye"),
     0, 1000, 3},
    {P("\x03\xE9"
       "going"),
     0, 1001, 5},
    {P("\x03\xEA"), 0, 1002, 0},
    {P("\x03\xEB"), 0, 1003, 0},
    {P("\x03\xEF"), 0, 1007, 0},
    {P("\x03\xF6"), 0, 1014, 0},
    {P("\x0B\xB8"), 0, 3000, 0},
    {P("\x13\x87"
       "x"),
     0, 4999, 1},
    {P("\x03\xE8\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"), 0, 1000, 11},
    {P("\x03\xE8\xF4\x8F\xBF\xBF"), 0, 1000, 4},
    /* Codes a peer may not send. */
    {P("\x00\x00"), 1002, 0, 0},
    {P("\x03\xE7"), 1002, 999, 0},
    {P("\x03\xEC"), 1002, 1004, 0},
    {P("\x03\xED"), 1002, 1005, 0},
    {P("\x03\xEE"), 1002, 1006, 0},
    {P("\x03\xF7"), 1002, 1015, 0},
    {P("\x03\xF8"), 1002, 1016, 0},
    {P("\x0B\xB7"), 1002, 2999, 0},
    {P("\x13\x88"), 1002, 5000, 0},
    {P("\xFF\xFF"
       "why"),
     1002, 65535, 3},
    /* The code is checked before the reason. */
    {P("\x03\xEE\xFF"), 1002, 1006, 1},
    /* Reasons that are not valid UTF-8. */
    {P("\x03\xE8\xFF"), 1007, 1000, 1},
    {P("\x03\xE8"
       "ok\x80"),
     1007, 1000, 3},
    {P("\x03\xE8\xC3"), 1007, 1000, 1}, /* cut short */
    {P("\x03\xE8\xE2\x82"), 1007, 1000, 2},
    {P("\x03\xE8\xED\xA0\x80"), 1007, 1000, 3}, /* a surrogate */
    {P("\x03\xE8\xC0\xAF"), 1007, 1000, 2},     /* overlong */
    {P("\x0F\xA0\xF4\x90\x80\x80"), 1007, 4000, 4},
};

static void test_parse(void) {
  for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
    const parse_case_t *pc = &parse_cases[i];
    uint8_t *copy = malloc(pc->len ? pc->len : 1);
    int code = -1;
    const uint8_t *reason = NULL;
    size_t reason_len = 999;
    if (pc->len)
      memcpy(copy, pc->payload, pc->len);
    int ret = wsl_close_parse(copy, pc->len, &code, &reason, &reason_len);
    CHECK_EQ_INT(ret, pc->ret);
    CHECK_EQ_INT(code, pc->code);
    CHECK_EQ_INT(reason_len, pc->reason_len);
    CHECK(reason != NULL);
    if (pc->reason_len)
      CHECK(reason == copy + 2);
    if (ret != pc->ret || code != pc->code)
      fprintf(stderr, "  in parse case %zu\n", i);
    /* The outputs are optional. */
    CHECK_EQ_INT(wsl_close_parse(copy, pc->len, NULL, NULL, NULL), pc->ret);
    free(copy);
  }
  /* The empty payload may come with no buffer at all. */
  int code = 0;
  size_t reason_len = 1;
  const uint8_t *reason = NULL;
  CHECK_EQ_INT(wsl_close_parse(NULL, 0, &code, &reason, &reason_len), 0);
  CHECK_EQ_INT(code, 1005);
  CHECK_EQ_INT(reason_len, 0);
  CHECK(reason != NULL);
}

/* A close frame's payload holds at most 125 bytes: the code and 123 of
 * reason. */
static void test_parse_length(void) {
  uint8_t p[126];
  memset(p, 'r', sizeof p);
  p[0] = 0x03, p[1] = 0xE8;
  size_t reason_len = 0;
  CHECK_EQ_INT(wsl_close_parse(p, 125, NULL, NULL, &reason_len), 0);
  CHECK_EQ_INT(reason_len, 123);
  CHECK_EQ_INT(wsl_close_parse(p, 126, NULL, NULL, NULL), 1002);
}

static void test_encode(void) {
  uint8_t out[125];
  CHECK_EQ_INT(wsl_close_encode(out, 1000, NULL, 0), 2);
  CHECK_MEM(out, "\x03\xE8", 2);
  CHECK_EQ_INT(wsl_close_encode(out, 1000, "", 0), 2);
  CHECK_EQ_INT(wsl_close_encode(out, 1001, "bye", 3), 5);
  CHECK_MEM(out,
            "\x03\xE9"
            "bye",
            5);
  CHECK_EQ_INT(wsl_close_encode(out, 4999, "x", 1), 3);
  CHECK_MEM(out,
            "\x13\x87"
            "x",
            3);
  CHECK_EQ_INT(wsl_close_encode(out, 3000, "\xCE\xBA", 2), 4);
  CHECK_MEM(out, "\x0B\xB8\xCE\xBA", 4);
  /* No status: an empty payload, whatever the reason. */
  memset(out, 0xEE, sizeof out);
  CHECK_EQ_INT(wsl_close_encode(out, 1005, "ignored", 7), 0);
  CHECK_EQ_INT(wsl_close_encode(out, 0, "ignored", 7), 0);
  CHECK_EQ_INT(wsl_close_encode(out, 0, NULL, 0), 0);
  CHECK_EQ_INT(out[0], 0xEE);
}

/* ASCII reasons: up to 123 bytes kept whole, longer ones cut to 123. */
static void test_encode_ascii_cut(void) {
  char reason[300];
  uint8_t out[125 + 8];
  for (size_t i = 0; i < sizeof reason; i++)
    reason[i] = (char)('a' + i % 26);
  for (size_t len = 0; len <= sizeof reason; len++) {
    size_t want = len < 123 ? len : 123;
    memset(out, 0xEE, sizeof out);
    CHECK_EQ_INT(wsl_close_encode(out, 1000, reason, len), 2 + want);
    CHECK_MEM(out + 2, reason, want);
    CHECK_EQ_INT(out[125], 0xEE); /* nothing written past 125 bytes */
  }
}

/* Appends the UTF-8 encoding of a character of the given length. */
static size_t put_char(char *s, size_t bytes) {
  static const char *const chars[5] = {"", "z", "\xC3\xA9", "\xE2\x82\xAC",
                                       "\xF0\x9F\x98\x80"};
  memcpy(s, chars[bytes], bytes);
  return bytes;
}

/* A character of every length straddling and abutting the 123-byte limit:
 * the kept reason is the longest whole-character prefix that fits. */
static void test_encode_utf8_cut(void) {
  char reason[200];
  uint8_t out[125];
  for (size_t bytes = 1; bytes <= 4; bytes++) {
    for (size_t start = 115; start <= 124; start++) {
      size_t n = start;
      memset(reason, 'a', start);
      n += put_char(reason + n, bytes);
      while (n < 140)
        n += put_char(reason + n, bytes);
      /* Characters from `start` on are `bytes` long each: the cut is at the
       * last boundary at or below 123. */
      size_t want = start >= 123 ? 123 : start + (123 - start) / bytes * bytes;
      size_t got = wsl_close_encode(out, 1000, reason, n);
      CHECK_EQ_INT(got, 2 + want);
      CHECK(got <= 125);
      CHECK_MEM(out + 2, reason, got - 2);
      CHECK(wsl_utf8_valid(out + 2, got - 2));
      /* And it parses back. */
      const uint8_t *r;
      size_t rlen;
      int code;
      CHECK_EQ_INT(wsl_close_parse(out, got, &code, &r, &rlen), 0);
      CHECK_EQ_INT(code, 1000);
      CHECK_EQ_INT(rlen, want);
    }
  }
}

/* Encode then parse gives back the code and reason, for every code a peer
 * may send. */
static void test_round_trip(void) {
  uint8_t out[125];
  for (int code = 1000; code < 5000; code++) {
    if (!wsl_close_code_valid(code))
      continue;
    size_t n = wsl_close_encode(out, code, "why", 3);
    int got = 0;
    const uint8_t *r = NULL;
    size_t rlen = 0;
    CHECK_EQ_INT(wsl_close_parse(out, n, &got, &r, &rlen), 0);
    CHECK_EQ_INT(got, code);
    CHECK_EQ_INT(rlen, 3);
    if (rlen == 3)
      CHECK_MEM(r, "why", 3);
  }
}

int main(void) {
  test_code_valid();
  test_parse();
  test_parse_length();
  test_encode();
  test_encode_ascii_cut();
  test_encode_utf8_cut();
  test_round_trip();
  return TEST_REPORT();
}
