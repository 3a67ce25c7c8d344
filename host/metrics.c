/* Metrics registry.  A singly linked list appended under a mutex; readers walk it
 * without the lock because nodes are only ever appended and freed at exit. */
#include "ggl-build.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double metric_bucket_bounds[METRIC_BUCKETS] = {
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 1e300};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ggl_metric *_Atomic head;
static _Atomic(struct ggl_metric *) *tail;
static struct ggl_metric sink;

/* "control_clients" -> "control"; a plugin's metrics go under "plugins". */
static char *default_section(const char *name, const char *label)
{
    if (label)
        return strdup("plugins");
    size_t n = strcspn(name, "_.");
    return strndup(name, n ? n : strlen(name));
}

static struct ggl_metric *first(void) { return atomic_load_explicit(&head, memory_order_acquire); }

static struct ggl_metric *after(const struct ggl_metric *m)
{
    return atomic_load_explicit(&((struct ggl_metric *)m)->next, memory_order_acquire);
}

struct ggl_metric *metrics_register(enum ggl_metric_type type, const char *name,
                                    const char *help, const char *label)
{
    return metrics_register_in(NULL, type, name, help, label);
}

struct ggl_metric *metrics_register_in(const char *section, enum ggl_metric_type type,
                                       const char *name, const char *help, const char *label)
{
    pthread_mutex_lock(&reg_lock);
    for (struct ggl_metric *m = first(); m; m = after(m))
        if (strcmp(m->name, name) == 0 && (m->label == label || (m->label && label &&
                                                                 strcmp(m->label, label) == 0))) {
            pthread_mutex_unlock(&reg_lock);
            return m;
        }
    struct ggl_metric *m = aligned_alloc(64, sizeof *m); /* the stripes are cache-line aligned */
    if (m)
        memset(m, 0, sizeof *m);
    if (!m || !(m->name = strdup(name)) || !(m->help = strdup(help ? help : "")) ||
        !(m->section = section ? strdup(section) : default_section(name, label))) {
        if (m) {
            free(m->name);
            free(m->help);
        }
        free(m);
        pthread_mutex_unlock(&reg_lock);
        return &sink;
    }
    m->type = type;
    m->label = label;
    /* m is complete before it becomes reachable: walkers load with acquire. */
    atomic_store_explicit(tail ? tail : &head, m, memory_order_release);
    tail = &m->next;
    pthread_mutex_unlock(&reg_lock);
    return m;
}

/* Doubles are kept as their bits in an atomic word: C11 `_Atomic double +=` needs
 * libatomic for floating-point exceptions; a compare-exchange loop does not. */
static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void add_bits(_Atomic uint64_t *cell, double delta)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(cell, &old, bits_of(double_of(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Each thread adds to its own stripe (two threads counting the same hits would
 * otherwise bounce one cache line on every read); a value is the sum of all. */
void metrics_add(struct ggl_metric *m, double delta)
{
    static _Atomic unsigned next_stripe;
    static _Thread_local unsigned mine = ~0u;
    if (mine == ~0u)
        mine = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % METRIC_STRIPES;
    add_bits(&m->stripe[mine].bits, delta);
    if (!atomic_load_explicit(&m->added, memory_order_relaxed))
        atomic_store_explicit(&m->added, 1, memory_order_relaxed);
}

void metrics_set(struct ggl_metric *m, double value)
{
    /* A gauge that is only ever set keeps its stripes at zero, untouched (the queues set
     * their depth on every push and pop); one that was also added to has them zeroed,
     * each loaded before it is stored, so zero ones stay shared read-only lines. */
    for (int i = 0; atomic_load_explicit(&m->added, memory_order_relaxed) && i < METRIC_STRIPES; i++)
        if (atomic_load_explicit(&m->stripe[i].bits, memory_order_relaxed))
            atomic_store_explicit(&m->stripe[i].bits, 0, memory_order_relaxed);
    atomic_store_explicit(&m->value, bits_of(value), memory_order_relaxed);
}

double metrics_value(const struct ggl_metric *m)
{
    struct ggl_metric *w = (struct ggl_metric *)m;
    double sum = double_of(atomic_load_explicit(&w->value, memory_order_relaxed));
    for (int i = 0; i < METRIC_STRIPES; i++)
        sum += double_of(atomic_load_explicit(&w->stripe[i].bits, memory_order_relaxed));
    return sum;
}

void metrics_observe(struct ggl_metric *m, double value)
{
    size_t i = 0;
    while (i < METRIC_BUCKETS - 1 && value > metric_bucket_bounds[i])
        i++;
    m->buckets[i]++;
    m->count++;
    metrics_add(m, value);
}

void metrics_foreach(void (*fn)(const struct ggl_metric *m, void *arg), void *arg)
{
    for (const struct ggl_metric *m = first(); m; m = after(m))
        fn(m, arg);
}

/* The smallest bucket bound under which a fraction q of the observations fall. */
static double histogram_quantile(const struct ggl_metric *m, uint64_t count, double q)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < METRIC_BUCKETS; i++) {
        seen += atomic_load_explicit(&((struct ggl_metric *)m)->buckets[i], memory_order_relaxed);
        if ((double)seen >= q * (double)count)
            return metric_bucket_bounds[i];
    }
    return metric_bucket_bounds[METRIC_BUCKETS - 1];
}

static void render_metric(FILE *f, const struct ggl_metric *m)
{
    fputs(m->name, f);
    if (m->label)
        fprintf(f, "{%s}", m->label);
    if (m->type != GGL_METRIC_HISTOGRAM) {
        fprintf(f, ":%.15g\r\n", metrics_value(m));
        return;
    }
    uint64_t count = atomic_load_explicit(&((struct ggl_metric *)m)->count, memory_order_relaxed);
    double sum = metrics_value(m);
    fprintf(f, ":count=%llu,avg=%.6g", (unsigned long long)count, count ? sum / (double)count : 0.0);
    if (count) {
        double p50 = histogram_quantile(m, count, 0.5), p99 = histogram_quantile(m, count, 0.99);
        if (p50 < 1e300)
            fprintf(f, ",p50<=%g", p50);
        if (p99 < 1e300)
            fprintf(f, ",p99<=%g", p99);
    }
    fputs("\r\n", f);
}

/* Has a metric registered before m already opened m's section? */
static int section_seen(const struct ggl_metric *m)
{
    for (const struct ggl_metric *o = first(); o != m; o = after(o))
        if (strcmp(o->section, m->section) == 0)
            return 1;
    return 0;
}

size_t metrics_render(FILE *f, const char *section)
{
    size_t lines = 0;
    for (const struct ggl_metric *s = first(); s; s = after(s)) {
        if (section_seen(s) || (section && strcasecmp(section, s->section) != 0))
            continue;
        fprintf(f, "%s# %c%s\r\n", lines ? "\r\n" : "", toupper((unsigned char)s->section[0]),
                s->section + 1);
        for (const struct ggl_metric *m = s; m; m = after(m))
            if (strcmp(m->section, s->section) == 0) {
                render_metric(f, m);
                lines++;
            }
    }
    return lines;
}

void metrics_fini(void)
{
    pthread_mutex_lock(&reg_lock);
    struct ggl_metric *m = head;
    head = NULL;
    tail = NULL;
    pthread_mutex_unlock(&reg_lock);
    while (m) {
        struct ggl_metric *next = after(m);
        free(m->name);
        free(m->help);
        free(m->section);
        free(m);
        m = next;
    }
}
