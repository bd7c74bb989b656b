/* A tiny assert header for the C unit tests: counts checks, reports failures
 * with file and line, and makes main() return non-zero if any check failed. */
#ifndef WSL_TEST_H
#define WSL_TEST_H

#include <stdio.h>
#include <string.h>

static int wsl_test_checks;
static int wsl_test_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    wsl_test_checks++;                                                         \
    if (!(cond)) {                                                             \
      wsl_test_failures++;                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long wsl_a_ = (long long)(a), wsl_b_ = (long long)(b);                \
    wsl_test_checks++;                                                         \
    if (wsl_a_ != wsl_b_) {                                                    \
      wsl_test_failures++;                                                     \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
              __LINE__, #a, #b, wsl_a_, wsl_b_);                               \
    }                                                                          \
  } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)
#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0)

#define TEST_REPORT()                                                          \
  (printf("%d checks, %d failed\n", wsl_test_checks, wsl_test_failures),      \
   wsl_test_failures ? 1 : 0)

#endif
