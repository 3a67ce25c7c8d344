/* Metrics registry.  A singly linked list appended under a mutex; readers walk it
 * without the lock because nodes are only ever appended and freed at exit. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double metric_bucket_bounds[METRIC_BUCKETS] = {
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 1e300};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ggl_metric *_Atomic head;
static struct ggl_metric **tail;
static struct ggl_metric sink;

struct ggl_metric *metrics_register(enum ggl_metric_type type, const char *name,
                                    const char *help, const char *label)
{
    pthread_mutex_lock(&reg_lock);
    for (struct ggl_metric *m = head; m; m = m->next)
        if (strcmp(m->name, name) == 0 && (m->label == label || (m->label && label &&
                                                                 strcmp(m->label, label) == 0))) {
            pthread_mutex_unlock(&reg_lock);
            return m;
        }
    struct ggl_metric *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name)) || !(m->help = strdup(help ? help : ""))) {
        if (m)
            free(m->name);
        free(m);
        pthread_mutex_unlock(&reg_lock);
        return &sink;
    }
    m->type = type;
    m->label = label;
    if (!tail)
        tail = (struct ggl_metric **)&head;
    *tail = m;
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

void metrics_add(struct ggl_metric *m, double delta)
{
    uint64_t old = atomic_load_explicit(&m->value, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->value, &old, bits_of(double_of(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metrics_set(struct ggl_metric *m, double value)
{
    atomic_store_explicit(&m->value, bits_of(value), memory_order_relaxed);
}

double metrics_value(const struct ggl_metric *m)
{
    return double_of(atomic_load_explicit(&((struct ggl_metric *)m)->value, memory_order_relaxed));
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
    for (const struct ggl_metric *m = head; m; m = m->next)
        fn(m, arg);
}

void metrics_fini(void)
{
    pthread_mutex_lock(&reg_lock);
    struct ggl_metric *m = head;
    head = NULL;
    tail = NULL;
    pthread_mutex_unlock(&reg_lock);
    while (m) {
        struct ggl_metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m);
        m = next;
    }
}
