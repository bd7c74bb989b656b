/* Log lines on stderr. A line is written with one call so that lines from
 * several threads never interleave. */
#include "net/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static wsl_log_level_t current_level = WSL_LOG_INFO;

void wsl_log_set_level(wsl_log_level_t level) {
  current_level = level;
}

wsl_log_level_t wsl_log_get_level(void) {
  return current_level;
}

int wsl_log_parse_level(const char *name) {
  for (int i = 0; i <= WSL_LOG_DEBUG; i++)
    if (strcmp(name, level_names[i]) == 0)
      return i;
  return -1;
}

const char *wsl_log_level_name(wsl_log_level_t level) {
  return level_names[level];
}

void wsl_log(wsl_log_level_t level, const char *fmt, ...) {
  if (level > current_level)
    return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ",
                ts.tv_nsec / 1000000, level_names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if (n > (int)sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  ssize_t unused = write(STDERR_FILENO, line, (size_t)n);
  (void)unused;
}
