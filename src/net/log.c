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
static int current_format = -1; /* not chosen yet */

void wsl_log_set_format(wsl_log_format_t format) {
  current_format = (int)format;
}

int wsl_log_parse_format(const char *name) {
  if (strcmp(name, "text") == 0)
    return WSL_LOG_TEXT;
  if (strcmp(name, "json") == 0)
    return WSL_LOG_JSON;
  return -1;
}

/* Appends s to out as a JSON string body (without quotes); returns the new
 * length, never past cap - 1. */
static int json_escape(char *out, int n, int cap, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; *s && n < cap - 7; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch == '\n') {
      out[n++] = '\\';
      out[n++] = 'n';
    } else if (ch == '\t') {
      out[n++] = '\\';
      out[n++] = 't';
    } else if (ch < 0x20) {
      n += snprintf(out + n, (size_t)(cap - n), "\\u00%c%c", hex[ch >> 4],
                    hex[ch & 15]);
    } else {
      out[n++] = (char)ch;
    }
  }
  return n;
}

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
  if (current_format < 0)
    current_format = isatty(STDERR_FILENO) ? WSL_LOG_TEXT : WSL_LOG_JSON;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  char stamp[40];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n0 = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + n0, sizeof stamp - n0, ".%03ldZ", ts.tv_nsec / 1000000);

  char line[4096];
  int n;
  if (current_format == WSL_LOG_JSON) {
    n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                 stamp, level_names[level]);
    n = json_escape(line, n, (int)sizeof line - 3, msg);
    line[n++] = '"';
    line[n++] = '}';
  } else {
    n = snprintf(line, sizeof line, "%s %-5s %s", stamp, level_names[level],
                 msg);
    if (n > (int)sizeof line - 2)
      n = (int)sizeof line - 2;
  }
  line[n++] = '\n';
  /* One write per line: lines from several threads never interleave. */
  ssize_t unused = write(STDERR_FILENO, line, (size_t)n);
  (void)unused;
}
