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

/* Appends s[0..len) to out as a JSON string body (without quotes); returns
 * the new length, never past cap - 1 (a value too long is cut). */
static int json_escape(char *out, int n, int cap, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  for (size_t k = 0; k < len && n < cap - 7; k++) {
    unsigned char ch = (unsigned char)s[k];
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch == '\n') {
      out[n++] = '\\';
      out[n++] = 'n';
    } else if (ch == '\t') {
      out[n++] = '\\';
      out[n++] = 't';
    } else if (ch < 0x20 || ch == 0x7f) {
      n += snprintf(out + n, (size_t)(cap - n), "\\u00%c%c", hex[ch >> 4],
                    hex[ch & 15]);
    } else {
      out[n++] = (char)ch;
    }
  }
  return n;
}

/* Appends formatted text; returns the new length, never past cap - 1. */
static int append(char *out, int n, int cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char *out, int n, int cap, const char *fmt, ...) {
  if (n >= cap - 1)
    return n;
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(out + n, (size_t)(cap - n), fmt, ap);
  va_end(ap);
  if (r < 0)
    return n;
  return n + r < cap - 1 ? n + r : cap - 1;
}

/* A text value needs quotes when it is empty or holds a space, a quote,
 * '=' or a control character. */
static int needs_quotes(const char *s, size_t len) {
  if (len == 0)
    return 1;
  for (size_t k = 0; k < len; k++) {
    unsigned char ch = (unsigned char)s[k];
    if (ch <= ' ' || ch == '"' || ch == '=' || ch == 0x7f)
      return 1;
  }
  return 0;
}

static int append_value(char *out, int n, int cap, const wsl_log_field_t *f,
                        int json) {
  switch (f->kind) {
  case WSL_LOG_STRING:
    if (!json && !needs_quotes(f->s, f->len)) {
      size_t room = (size_t)(cap - 1 - n);
      size_t k = f->len < room ? f->len : room;
      memcpy(out + n, f->s, k);
      return n + (int)k;
    }
    n = append(out, n, cap, "\"");
    n = json_escape(out, n, cap - 1, f->s, f->len);
    return append(out, n, cap, "\"");
  case WSL_LOG_INTEGER:
    return append(out, n, cap, "%lld", f->i);
  case WSL_LOG_NUMBER:
    if (f->n != f->n || f->n - f->n != 0) /* NaN or infinite */
      return append(out, n, cap, json ? "null" : "%g", f->n);
    return append(out, n, cap, "%.15g", f->n);
  case WSL_LOG_BOOLEAN:
    return append(out, n, cap, "%s", f->i ? "true" : "false");
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

/* Writes one line: the time, the level, the message and the fields. */
static void emit(wsl_log_level_t level, const char *msg,
                 const wsl_log_field_t *fields, size_t nfields) {
  if (current_format < 0)
    current_format = isatty(STDERR_FILENO) ? WSL_LOG_TEXT : WSL_LOG_JSON;
  char stamp[40];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n0 = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + n0, sizeof stamp - n0, ".%03ldZ", ts.tv_nsec / 1000000);

  /* Room is kept for the closing '}' and the newline. */
  char line[4096];
  const int cap = (int)sizeof line - 2;
  int json = current_format == WSL_LOG_JSON;
  int n;
  if (json) {
    n = append(line, 0, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
               stamp, level_names[level]);
    n = json_escape(line, n, cap - 1, msg, strlen(msg));
    n = append(line, n, cap, "\"");
  } else {
    n = append(line, 0, cap, "%s %-5s %s", stamp, level_names[level], msg);
  }
  for (size_t k = 0; k < nfields; k++) {
    if (json) {
      n = append(line, n, cap, ",\"");
      n = json_escape(line, n, cap - 1, fields[k].key, strlen(fields[k].key));
      n = append(line, n, cap, "\":");
    } else {
      n = append(line, n, cap, " %s=", fields[k].key);
    }
    n = append_value(line, n, cap, &fields[k], json);
  }
  if (json)
    line[n++] = '}';
  line[n++] = '\n';
  /* One write per line: lines from several threads never interleave. */
  ssize_t unused = write(STDERR_FILENO, line, (size_t)n);
  (void)unused;
}

void wsl_log(wsl_log_level_t level, const char *fmt, ...) {
  if (level > current_level)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, msg, NULL, 0);
}

void wsl_log_fields(wsl_log_level_t level, const char *msg,
                    const wsl_log_field_t *fields, size_t nfields) {
  if (level > current_level)
    return;
  emit(level, msg, fields, nfields);
}
