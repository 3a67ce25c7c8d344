/* Metrics registry: counters, gauges and fixed-bucket histograms that every component
 * and plugin registers into, grouped in sections for INFO; updates are lock-free,
 * registration takes a mutex. */
#ifndef GGL_HOST_METRICS_H
#define GGL_HOST_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <ganglion/host.h>

#define METRIC_BUCKETS 12 /* upper bounds in metrics.c; the last is +Inf */
#define METRIC_STRIPES 8  /* adds land on one of these by thread: no shared line per add */

struct ggl_metric {
    enum ggl_metric_type type;
    char *name;
    char *help;
    const char *label;            /* owning instance or NULL; borrowed, outlives the metric */
    char *section;                /* INFO section, e.g. "control" */
    _Atomic uint64_t value;       /* bits of a double: counter / gauge; histogram: sum */
    _Atomic int added;            /* metrics_add was used: the stripes may hold shares */
    _Atomic uint64_t count;       /* histogram: observations */
    _Atomic uint64_t buckets[METRIC_BUCKETS];
    _Atomic(struct ggl_metric *) next; /* published with release: readers take no lock */
    struct {
        _Atomic uint64_t bits; /* a double's bits: this stripe's share of value */
    } __attribute__((aligned(64))) stripe[METRIC_STRIPES];
};

extern const double metric_bucket_bounds[METRIC_BUCKETS];

/* Register (or find, by name and label) a metric.  Never fails: on allocation failure
 * returns a shared sink that accepts updates and is never rendered.  The section is
 * "plugins" for a labelled metric, else the name up to its first '_' or '.'. */
struct ggl_metric *metrics_register(enum ggl_metric_type type, const char *name,
                                    const char *help, const char *label);
/* The same with an explicit INFO section. */
struct ggl_metric *metrics_register_in(const char *section, enum ggl_metric_type type,
                                       const char *name, const char *help, const char *label);
void metrics_add(struct ggl_metric *m, double delta);
void metrics_set(struct ggl_metric *m, double value);
void metrics_observe(struct ggl_metric *m, double value);
double metrics_value(const struct ggl_metric *m);

/* Visit every registered metric in registration order. */
void metrics_foreach(void (*fn)(const struct ggl_metric *m, void *arg), void *arg);
/* Write the metrics of `section` (NULL: all), grouped under "# Section" headers, one
 * "name:value" line each (CRLF, as Redis INFO).  Returns the number of lines. */
size_t metrics_render(FILE *f, const char *section);
/* Write every metric in the Prometheus text exposition format 0.0.4 (prometheus.c):
 * names prefixed "ganglion_", counters ending "_total", the owning instance as label
 * `instance`, histograms as cumulative `_bucket{le}`, `_sum` and `_count`.  Returns the
 * number of metric families. */
size_t metrics_render_prometheus(FILE *f);
void metrics_fini(void);

#endif
