/* The control socket's worker pool.  Submission is a mutex+condvar FIFO (bounded);
 * completion is a Treiber stack the loop swaps out whole, so producers never block and
 * many completions cost one uv_async wake-up. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"
#include "metrics.h"
#include "offload.h"

struct offload {
    uv_async_t async;              /* first: the close callback gets the pool from it */
    pthread_mutex_t lock;
    pthread_cond_t work;           /* workers wait for jobs */
    pthread_cond_t sleepers;       /* offload_wait() */
    struct job *head, *tail;       /* submitted, not started */
    size_t queued, max_queue;
    int stopping;
    pthread_t *threads;
    int n_threads;
    struct job *_Atomic done_stack;
    job_done_fn done;
    void *done_arg;
    struct ggl_metric *m_depth, *m_busy, *m_wait;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct job *job_new(const struct request *req, void (*run)(struct job *), const void *fn)
{
    size_t bytes = 0;
    for (int i = 0; i < req->argc; i++)
        bytes += req->lens[i] + 1;
    size_t n = (size_t)req->argc;
    struct job *j = calloc(1, sizeof *j + (n + 1) * sizeof(char *) + n * sizeof(size_t) + bytes);
    if (!j)
        return NULL;
    j->req.argc = req->argc;
    j->req.argv = (char **)(j + 1);
    j->req.lens = (size_t *)(j->req.argv + n + 1);
    char *s = (char *)(j->req.lens + n);
    for (int i = 0; i < req->argc; i++) {
        memcpy(s, req->argv[i], req->lens[i] + 1);
        j->req.argv[i] = s;
        j->req.lens[i] = req->lens[i];
        s += req->lens[i] + 1;
    }
    j->run = run;
    j->fn = fn;
    return j;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    buf_free(&j->reply);
    free(j);
}

/* Any thread: hand a finished job back to the loop. */
void offload_complete(struct offload *o, struct job *j)
{
    struct job *head = atomic_load_explicit(&o->done_stack, memory_order_relaxed);
    do
        j->next = head;
    while (!atomic_compare_exchange_weak_explicit(&o->done_stack, &head, j, memory_order_release,
                                                  memory_order_relaxed));
    uv_async_send(&o->async);
}

/* Loop thread: take every finished job, oldest first. */
static void on_wake(uv_async_t *a)
{
    struct offload *o = (struct offload *)a;
    struct job *j = atomic_exchange_explicit(&o->done_stack, NULL, memory_order_acquire);
    struct job *fifo = NULL;
    while (j) {
        struct job *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    while (fifo) {
        struct job *next = fifo->next;
        o->done(fifo, o->done_arg);
        fifo = next;
    }
}

static struct job *take(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    while (!o->head && !o->stopping)
        pthread_cond_wait(&o->work, &o->lock);
    struct job *j = o->stopping ? NULL : o->head;
    if (j) {
        o->head = j->next;
        if (!o->head)
            o->tail = NULL;
        o->queued--;
        metrics_set(o->m_depth, (double)o->queued);
    }
    pthread_mutex_unlock(&o->lock);
    return j;
}

static void *worker_main(void *arg)
{
    struct offload *o = arg;
    struct job *j;
    while ((j = take(o)) != NULL) {
        metrics_observe(o->m_wait, (double)(now_ns() - j->queued_ns) / 1e9);
        j->run(j);
        offload_complete(o, j);
    }
    return NULL;
}

struct offload *offload_new(uv_loop_t *loop, int threads, size_t max_queue, job_done_fn done,
                            void *arg)
{
    struct offload *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->work, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&o->sleepers, &attr);
    pthread_condattr_destroy(&attr);
    o->max_queue = max_queue;
    o->done = done;
    o->done_arg = arg;
    o->m_depth = metrics_register_in("control", GGL_METRIC_GAUGE, "control_worker_queue",
                                     "commands waiting for a control worker", NULL);
    o->m_busy = metrics_register_in("control", GGL_METRIC_COUNTER, "control_worker_busy",
                                    "commands refused with -BUSY: worker queue full", NULL);
    o->m_wait = metrics_register_in("control", GGL_METRIC_HISTOGRAM, "control_worker_wait_seconds",
                                    "time from submission to a worker picking it up", NULL);
    o->threads = calloc((size_t)threads, sizeof *o->threads);
    if (!o->threads || uv_async_init(loop, &o->async, on_wake) != 0)
        goto fail;
    for (; o->n_threads < threads; o->n_threads++)
        if (pthread_create(&o->threads[o->n_threads], NULL, worker_main, o) != 0)
            break;
    if (o->n_threads == 0) {
        log_error("control: cannot start a worker thread");
        offload_stop(o);
        return NULL;
    }
    return o;
fail:
    free(o->threads);
    free(o);
    return NULL;
}

int offload_submit(struct offload *o, struct job *j)
{
    pthread_mutex_lock(&o->lock);
    if (o->stopping || o->queued >= o->max_queue) {
        pthread_mutex_unlock(&o->lock);
        metrics_add(o->m_busy, 1);
        return -1;
    }
    j->pool = o;
    j->next = NULL;
    j->queued_ns = now_ns();
    if (o->tail)
        o->tail->next = j;
    else
        o->head = j;
    o->tail = j;
    o->queued++;
    metrics_set(o->m_depth, (double)o->queued);
    pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->lock);
    return 0;
}

int offload_wait(struct offload *o, int64_t ms)
{
    struct timespec dl = deadline_after_ms(CLOCK_MONOTONIC, ms > 0 ? (uint64_t)ms : 0);
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    while (!o->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&o->sleepers, &o->lock, &dl);
    int stopped = o->stopping;
    pthread_mutex_unlock(&o->lock);
    return stopped ? -1 : 0;
}

static void on_closed(uv_handle_t *h)
{
    struct offload *o = (struct offload *)h;
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->work);
    pthread_cond_destroy(&o->sleepers);
    free(o->threads);
    free(o);
}

void offload_stop(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    o->stopping = 1;
    pthread_cond_broadcast(&o->work);
    pthread_cond_broadcast(&o->sleepers);
    pthread_mutex_unlock(&o->lock);
    for (int i = 0; i < o->n_threads; i++)
        pthread_join(o->threads[i], NULL);
    while (o->head) { /* never started: complete as cancelled */
        struct job *j = o->head;
        o->head = j->next;
        j->cancelled = 1;
        offload_complete(o, j);
    }
    o->tail = NULL;
    o->queued = 0;
    on_wake(&o->async);
    uv_close((uv_handle_t *)&o->async, on_closed);
}
