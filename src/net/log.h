/* Log lines on stderr: one line per event, with time, level and cause. */
#ifndef WSL_LOG_H
#define WSL_LOG_H

#include <stddef.h>

typedef enum {
  WSL_LOG_ERROR,
  WSL_LOG_WARN,
  WSL_LOG_INFO,
  WSL_LOG_DEBUG
} wsl_log_level_t;

typedef enum { WSL_LOG_TEXT, WSL_LOG_JSON } wsl_log_format_t;

/* Text (readable, for a terminal) or JSON lines (for log collectors):
 * {"time":"...","level":"info","msg":"..."}. Default: text when stderr is
 * a terminal, JSON otherwise (set at the first line unless chosen). */
void wsl_log_set_format(wsl_log_format_t format);
/* Parses "text" or "json"; -1 for anything else. */
int wsl_log_parse_format(const char *name);

/* Lines above the level are dropped. Default: WSL_LOG_INFO. */
void wsl_log_set_level(wsl_log_level_t level);
wsl_log_level_t wsl_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int wsl_log_parse_level(const char *name);
const char *wsl_log_level_name(wsl_log_level_t level);

void wsl_log(wsl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A field of a structured line: a key and a typed value. */
typedef enum {
  WSL_LOG_STRING,
  WSL_LOG_INTEGER,
  WSL_LOG_NUMBER,
  WSL_LOG_BOOLEAN
} wsl_log_kind_t;

typedef struct {
  const char *key;
  wsl_log_kind_t kind;
  const char *s; /* WSL_LOG_STRING: s[0..len), may hold any byte */
  size_t len;
  long long i;   /* WSL_LOG_INTEGER, WSL_LOG_BOOLEAN (0 or 1) */
  double n;      /* WSL_LOG_NUMBER */
} wsl_log_field_t;

/* A line with fields, for machines as much as for people (access lines):
 * JSON gets them as members of the line's object, typed
 * ({"time":...,"level":"info","msg":"access","status":200,...}); text gets
 * them after the message as key=value, a value quoted when it holds a
 * space, a quote, '=' or a control character (logfmt). */
void wsl_log_fields(wsl_log_level_t level, const char *msg,
                    const wsl_log_field_t *fields, size_t nfields);

#endif
