/* Host logging.  Lines are formatted whole into a stack buffer and written with one
 * call, so lines from different threads never interleave. */
#include "ggl-build.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include "log.h"

static enum ggl_log_level max_level = GGL_LOG_INFO;
static log_sink_fn sink_fn;
static void *sink_arg;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum ggl_log_level level) { max_level = level; }

void log_set_sink(log_sink_fn sink, void *arg)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = sink;
    sink_arg = arg;
    pthread_mutex_unlock(&sink_lock);
}

void log_vmsg(enum ggl_log_level level, const char *prefix, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    size_t n = 0;

    if (level > max_level)
        return;
    if (prefix)
        n = (size_t)snprintf(line, sizeof line, "%s: ", prefix);
    int w = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (w > 0)
        n += (size_t)w;
    if (n >= sizeof line - 1)
        n = sizeof line - 2;

    pthread_mutex_lock(&sink_lock);
    if (sink_fn) {
        line[n] = '\0';
        sink_fn(level, line, sink_arg);
    } else {
        char stamp[32];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        line[n++] = '\n';
        dprintf(STDERR_FILENO, "%s.%03ldZ %s %.*s", stamp, ts.tv_nsec / 1000000,
                names[level], (int)n, line);
    }
    pthread_mutex_unlock(&sink_lock);
}

void log_msg(enum ggl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, NULL, fmt, ap);
    va_end(ap);
}
