/* Host logging: one line per event to stderr (or a test's sink), with level and time. */
#ifndef GGL_HOST_LOG_H
#define GGL_HOST_LOG_H

#include <stdarg.h>
#include <ganglion/host.h>

typedef void (*log_sink_fn)(enum ggl_log_level level, const char *line, void *arg);

void log_set_level(enum ggl_log_level level);
/* Route lines to `sink` instead of stderr (NULL restores stderr).  For tests. */
void log_set_sink(log_sink_fn sink, void *arg);
void log_msg(enum ggl_log_level level, const char *fmt, ...) GGL_PRINTF(2, 3);
void log_vmsg(enum ggl_log_level level, const char *prefix, const char *fmt, va_list ap);

#define log_error(...) log_msg(GGL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(GGL_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(GGL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(GGL_LOG_DEBUG, __VA_ARGS__)

#endif
