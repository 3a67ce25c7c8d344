/* METRICS: the registry in the Prometheus text exposition format 0.0.4.  Metrics of
 * one name are grouped under a single HELP/TYPE pair (the registry keeps them in
 * registration order, where instances of one name may interleave with others). */
#include "ggl-build.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define PROM_PREFIX "ganglion_"

struct collected {
    const struct ggl_metric **v;
    size_t n, cap;
};

static void collect(const struct ggl_metric *m, void *arg)
{
    struct collected *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        const struct ggl_metric **v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return; /* rendered without it: METRICS is best effort under memory pressure */
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = m;
}

/* Sort by name, keeping registration order within a name (stable via the address
 * order of the pointer slots, which is the registration order). */
static int by_name(const void *a, const void *b)
{
    const struct ggl_metric *const *x = a, *const *y = b;
    int c = strcmp((*x)->name, (*y)->name);
    return c ? c : (x < y ? -1 : x > y);
}

/* A metric name is [a-zA-Z_:][a-zA-Z0-9_:]*: anything else becomes '_'. */
static void put_name(FILE *f, const struct ggl_metric *m)
{
    fputs(PROM_PREFIX, f);
    for (const char *p = m->name; *p; p++)
        fputc(isalnum((unsigned char)*p) || *p == '_' || *p == ':' ? *p : '_', f);
    size_t n = strlen(m->name);
    if (m->type == GGL_METRIC_COUNTER && (n < 6 || strcmp(m->name + n - 6, "_total") != 0))
        fputs("_total", f); /* the format's convention for counters */
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void put_escaped(FILE *f, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (quote && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

/* name{instance="...",le="..."} value */
static void put_sample(FILE *f, const struct ggl_metric *m, const char *suffix, const char *le,
                       double value)
{
    put_name(f, m);
    fputs(suffix, f);
    if (m->label || le) {
        fputc('{', f);
        if (m->label) {
            fputs("instance=\"", f);
            put_escaped(f, m->label, 1);
            fputc('"', f);
        }
        if (le)
            fprintf(f, "%sle=\"%s\"", m->label ? "," : "", le);
        fputc('}', f);
    }
    fprintf(f, " %.17g\n", value);
}

static void put_histogram(FILE *f, const struct ggl_metric *m)
{
    struct ggl_metric *w = (struct ggl_metric *)m;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < METRIC_BUCKETS; i++) {
        char le[32];
        cumulative += atomic_load_explicit(&w->buckets[i], memory_order_relaxed);
        if (i == METRIC_BUCKETS - 1)
            strcpy(le, "+Inf");
        else
            snprintf(le, sizeof le, "%g", metric_bucket_bounds[i]);
        put_sample(f, m, "_bucket", le, (double)cumulative);
    }
    put_sample(f, m, "_sum", NULL, metrics_value(m));
    /* _count equals the +Inf bucket (read once above), as the format requires. */
    put_sample(f, m, "_count", NULL, (double)cumulative);
}

size_t metrics_render_prometheus(FILE *f)
{
    static const char *const types[] = {"", "counter", "gauge", "histogram"};
    struct collected c = {0};
    metrics_foreach(collect, &c);
    qsort(c.v, c.n, sizeof *c.v, by_name);
    size_t families = 0;
    const struct ggl_metric *family = NULL; /* the first metric of the current name */
    for (size_t i = 0; i < c.n; i++) {
        const struct ggl_metric *m = c.v[i];
        if (!family || strcmp(family->name, m->name) != 0) {
            family = m;
            families++;
            fputs("# HELP ", f);
            put_name(f, m);
            fputc(' ', f);
            put_escaped(f, m->help[0] ? m->help : m->name, 0);
            fputs("\n# TYPE ", f);
            put_name(f, m);
            fprintf(f, " %s\n", types[m->type]);
        } else if (family->type != m->type) {
            continue; /* one family has one type: a plugin reusing a name differently */
        }
        if (m->type == GGL_METRIC_HISTOGRAM)
            put_histogram(f, m);
        else
            put_sample(f, m, "", NULL, metrics_value(m));
    }
    free(c.v);
    return families;
}
