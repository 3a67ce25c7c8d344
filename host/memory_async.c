/* The asynchronous front of the memory manager.  Requests carry copies of key and value.
 * Each worker owns a bounded FIFO, and a key always maps to the same worker, so every
 * request on one key (read, write, delete) runs in submission order: a client reads its
 * own writes and a later write never overtakes an earlier read.  A worker takes
 * everything queued (up to `batch`) at once and sends each run of consecutive puts to
 * one target tier as a single backend batch (one SQLite transaction), so grouped commits
 * come for free under load and cost nothing when idle.  Workers block on condition
 * variables; a full queue refuses at admission (GGL_RETRY). */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "hostapi.h"
#include "log.h"
#include "memory_async.h"
#include "metrics.h"

struct request {
    struct request *next;
    enum memory_op op;
    memory_done_fn done;
    void *arg;
    struct memory_write w;
    size_t len, vlen;
    char data[]; /* key, then value */
};

/* A write the target tier could not take, acknowledged as +QUEUED: held (with the
 * version it was given) until the tier takes it.  The request keeps key and value. */
struct pending {
    struct request *r;
    struct ggl_entry e;
    int target;
};

struct fifo {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct request *head, **tail;
    size_t count, cap;
    int stop;
    /* Worker-only: queued writes, retried oldest first every retry_ms. */
    struct pending *pending;
    size_t npending, pending_cap;
};

static struct {
    _Atomic int running; /* read by submitters on any thread */
    int started;         /* the queues exist (until memory_async_free) */
    size_t batch;
    struct fifo *writes; /* one per worker: the key partitions */
    size_t nwriters;
    pthread_t *threads;
    size_t nthreads;
    int queue_writes;
    int64_t retry_ms;
    struct ggl_metric *refused, *queued, *pending, *lost;
} A;

static void fifo_init(struct fifo *f, size_t cap, size_t pending_cap)
{
    f->pending = NULL;
    f->npending = 0;
    f->pending_cap = pending_cap;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->nonempty, NULL);
    f->head = NULL;
    f->tail = &f->head;
    f->count = 0;
    f->cap = cap;
    f->stop = 0;
}

static enum ggl_status fifo_push(struct fifo *f, struct request *r)
{
    pthread_mutex_lock(&f->lock);
    if (f->stop) {
        pthread_mutex_unlock(&f->lock);
        hostapi_set_reason("memory workers are stopping");
        return GGL_UNAVAILABLE;
    }
    if (f->count >= f->cap) {
        pthread_mutex_unlock(&f->lock);
        metrics_add(A.refused, 1);
        hostapi_set_reason("memory queue full (%zu requests)", f->cap);
        return GGL_RETRY;
    }
    r->next = NULL;
    *f->tail = r;
    f->tail = &r->next;
    if (f->count++ == 0)
        pthread_cond_signal(&f->nonempty); /* consumers sleep only on an empty queue */
    pthread_mutex_unlock(&f->lock);
    metrics_add(A.queued, 1);
    return GGL_OK;
}

/* Up to `max` requests, oldest first, as a list.  NULL once stopped and drained (then
 * *stopped is set), or, with writes waiting to be retried, when retry_ms passed. */
static struct request *fifo_pop(struct fifo *f, size_t max, int *stopped)
{
    struct timespec due = {0};
    if (f->npending)
        due = deadline_after_ms(CLOCK_REALTIME, (uint64_t)A.retry_ms);
    pthread_mutex_lock(&f->lock);
    while (!f->head && !f->stop)
        if (!f->npending)
            pthread_cond_wait(&f->nonempty, &f->lock);
        else if (pthread_cond_timedwait(&f->nonempty, &f->lock, &due) != 0)
            break; /* time to retry the queued writes */
    *stopped = !f->head && f->stop;
    struct request *first = f->head, **end = &f->head;
    size_t n = 0;
    while (*end && n < max)
        end = &(*end)->next, n++;
    f->head = *end;
    *end = NULL;
    if (!f->head)
        f->tail = &f->head;
    f->count -= n;
    pthread_mutex_unlock(&f->lock);
    return first;
}

static void fifo_stop(struct fifo *f)
{
    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_cond_broadcast(&f->nonempty);
    pthread_mutex_unlock(&f->lock);
}

static void fifo_destroy(struct fifo *f)
{
    free(f->pending);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->nonempty);
}

/* A failure carries the reason its tier left (set already for a batch's members). */
static void finish(struct request *r, struct memory_result *res)
{
    if (res->status != GGL_OK && res->status != GGL_NOTFOUND && !res->reason[0])
        snprintf(res->reason, sizeof res->reason, "%s", hostapi_take_reason());
    r->done(r->arg, res);
}

/* Run one read or delete. */
static void run_one(struct request *r)
{
    struct memory_result res = {.op = r->op};
    if (r->op == MEM_OP_DEL)
        res.status = memory_del(r->data, r->len, &res.existed);
    else
        res.status = memory_get(r->data, r->len, &res.value);
    finish(r, &res);
    free(r);
}

/* A run of consecutive reads as one batch (each tier asked once); returns what follows. */
static struct request *run_reads(struct request *r)
{
    const void *keys[256];
    size_t lens[256], n = 0;
    struct request *group[256];
    struct memory_value values[256];
    enum ggl_status status[256];
    for (; r && r->op == MEM_OP_GET && n < 256; r = r->next) {
        keys[n] = r->data;
        lens[n] = r->len;
        group[n++] = r;
    }
    enum ggl_status st = memory_get_batch(keys, lens, n, values, status);
    for (size_t i = 0; i < n; i++) {
        struct memory_result res = {.op = MEM_OP_GET, .status = st == GGL_OK ? status[i] : st};
        if (res.status == GGL_OK)
            res.value = values[i];
        finish(group[i], &res);
        free(group[i]);
    }
    return r;
}

/* Hold a write the target could not take, if config allows: its entry goes to the
 * cache flagged pending (reads see it; never evicted) and to the retry list.  Returns 1
 * when held: the request now belongs to the list. */
static int hold(struct fifo *f, struct request *r, const struct ggl_entry *e, int target)
{
    if (!A.queue_writes || f->npending >= f->pending_cap || memory_hold_in_cache(e) != GGL_OK)
        return 0;
    if (!f->pending && !(f->pending = malloc(f->pending_cap * sizeof *f->pending)))
        return 0;
    f->pending[f->npending] = (struct pending){r, *e, target};
    f->pending[f->npending++].e.flags |= GGL_ENTRY_PENDING; /* the retry settles the cache copy */
    metrics_add(A.pending, 1);
    return 1;
}

/* Retry held writes, oldest first, in one batch per target; keep what still fails. */
static void retry_held(struct fifo *f, int last_chance)
{
    enum ggl_status status[256];
    struct ggl_entry es[256];
    size_t kept = 0;
    for (size_t i = 0; i < f->npending;) {
        int target = f->pending[i].target;
        size_t n = 0, start = i;
        for (; i < f->npending && n < 256 && f->pending[i].target == target; i++)
            es[n++] = f->pending[i].e;
        memory_write_entries(target, es, n, GGL_VERSION_OLDER, status);
        for (size_t k = 0; k < n; k++) {
            struct pending *p = &f->pending[start + k];
            enum ggl_status st = status[k];
            if (st != GGL_OK && last_chance && target != SLOT_LTM && memory_tier_bound(SLOT_LTM))
                memory_write_entries(SLOT_LTM, &p->e, 1, GGL_VERSION_OLDER, &st); /* shutdown: LTM keeps it */
            if (st == GGL_OK || last_chance) {
                if (st != GGL_OK) {
                    metrics_add(A.lost, 1);
                    log_error("memory: a queued write (version %llu) is lost: its tier and LTM "
                              "are unreachable", (unsigned long long)p->e.version);
                }
                metrics_add(A.pending, -1);
                free(p->r);
            } else {
                f->pending[kept++] = *p;
            }
        }
    }
    f->npending = kept;
}

/* Run a partition's requests in order: consecutive puts aimed at the same tier go as
 * one batch; a read or delete runs alone, after everything queued before it.  A put
 * the target cannot take right now is held and answered QUEUED when config allows. */
static void run_writes(struct fifo *f, struct request *r)
{
    struct ggl_entry es[256];
    struct memory_item items[256];
    enum ggl_status status[256];
    struct request *group[256];
    while (r) {
        struct request *next = r->next;
        if (r->op == MEM_OP_GET && next && next->op == MEM_OP_GET) {
            r = run_reads(r);
            continue;
        }
        if (r->op != MEM_OP_PUT) {
            run_one(r);
            r = next;
            continue;
        }
        size_t n = 0;
        for (struct request *q = r; q && q->op == MEM_OP_PUT && n < 256 && q->w.tier == r->w.tier &&
                                    q->w.ttl_ms == r->w.ttl_ms && q->w.pin == r->w.pin &&
                                    q->w.importance == r->w.importance;
             q = q->next) {
            items[n] = (struct memory_item){q->data, q->len, q->data + q->len, q->vlen};
            group[n++] = q;
        }
        next = group[n - 1]->next;
        int target = memory_prepare(items, n, &r->w, es);
        enum ggl_status st = target < 0 ? GGL_INVALID
                                        : memory_write_entries(target, es, n,
                                                               memory_fresh_expect(target), status);
        char why[sizeof ((struct memory_result *)0)->reason]; /* one reason for the batch */
        snprintf(why, sizeof why, "%s", hostapi_take_reason());
        for (size_t i = 0; i < n; i++) {
            struct memory_result res = {.op = MEM_OP_PUT, .status = st == GGL_OK ? status[i] : st};
            if (res.status != GGL_OK && res.status != GGL_NOTFOUND)
                snprintf(res.reason, sizeof res.reason, "%s", why);
            if ((res.status == GGL_RETRY || res.status == GGL_UNAVAILABLE) && target >= 0 &&
                hold(f, group[i], &es[i], target)) {
                res.status = GGL_OK;
                res.queued = 1;
                finish(group[i], &res);
                continue;
            }
            finish(group[i], &res);
            free(group[i]);
        }
        r = next;
    }
}

static void *write_worker(void *arg)
{
    struct fifo *f = arg;
    int stopped = 0;
    while (!stopped) {
        struct request *r = fifo_pop(f, A.batch, &stopped);
        if (f->npending)
            retry_held(f, 0);
        if (r)
            run_writes(f, r);
    }
    retry_held(f, 1); /* held writes: their tier, else LTM, else counted as lost */
    return NULL;
}

static struct request *request_new(enum memory_op op, const void *key, size_t len,
                                   const void *value, size_t vlen, memory_done_fn done, void *arg)
{
    struct request *r = malloc(sizeof *r + len + vlen);
    if (!r)
        return NULL;
    r->op = op;
    r->done = done;
    r->arg = arg;
    r->len = len;
    r->vlen = vlen;
    memcpy(r->data, key, len);
    if (vlen)
        memcpy(r->data + len, value, vlen);
    return r;
}

static uint64_t key_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    while (len--)
        h = (h ^ *p++) * 1099511628211ull;
    return h;
}

static enum ggl_status submit(struct fifo *f, struct request *r)
{
    if (!r)
        return GGL_NOMEM;
    enum ggl_status st = fifo_push(f, r);
    if (st != GGL_OK)
        free(r);
    return st;
}

static struct fifo *writer_for(const void *key, size_t len);

int memory_async_queues_writes(void) { return A.queue_writes; }

enum ggl_status memory_async_get(const void *key, size_t len, memory_done_fn done, void *arg)
{
    if (!A.running)
        return GGL_UNAVAILABLE;
    struct memory_result res = {.op = MEM_OP_GET};
    res.status = memory_get_cached(key, len, &res.value);
    if (res.status != GGL_RETRY) { /* answered by the cache, on this thread */
        done(arg, &res);
        return GGL_OK;
    }
    return memory_async_read(key, len, done, arg);
}

/* The partition of a key: the same worker for every request on it. */
static struct fifo *writer_for(const void *key, size_t len)
{
    return &A.writes[key_hash(key, len) % A.nwriters];
}

enum ggl_status memory_async_read(const void *key, size_t len, memory_done_fn done, void *arg)
{
    if (!A.running)
        return GGL_UNAVAILABLE;
    return submit(writer_for(key, len), request_new(MEM_OP_GET, key, len, NULL, 0, done, arg));
}

enum ggl_status memory_async_put(const void *key, size_t len, const void *value, size_t vlen,
                                 const struct memory_write *w, memory_done_fn done, void *arg)
{
    if (!A.running)
        return GGL_UNAVAILABLE;
    struct request *r = request_new(MEM_OP_PUT, key, len, value, vlen, done, arg);
    if (r)
        r->w = *w;
    return submit(writer_for(key, len), r);
}

enum ggl_status memory_async_del(const void *key, size_t len, memory_done_fn done, void *arg)
{
    if (!A.running)
        return GGL_UNAVAILABLE;
    return submit(writer_for(key, len), request_new(MEM_OP_DEL, key, len, NULL, 0, done, arg));
}

int memory_async_start(const struct memory_async_conf *c)
{
    /* Reads and writes share the partitions, so both pools' sizes make the worker count. */
    A.nwriters = (size_t)((c->read_workers > 0 ? c->read_workers : 0) +
                          (c->write_workers > 0 ? c->write_workers : 0));
    if (!A.nwriters)
        A.nwriters = 1;
    A.batch = (size_t)(c->batch > 0 ? c->batch : 64);
    A.queue_writes = c->queue_writes;
    A.retry_ms = c->retry_ms > 0 ? c->retry_ms : 200;
    A.pending = metrics_register(GGL_METRIC_GAUGE, "memory_pending_writes", "writes answered QUEUED, not yet in their tier: lost if the host crashes", NULL);
    A.lost = metrics_register(GGL_METRIC_COUNTER, "memory_pending_lost_total", "queued writes dropped at shutdown: their tier and LTM unreachable", NULL);
    A.refused = metrics_register(GGL_METRIC_COUNTER, "memory_queue_refused_total", "requests refused: queue full", NULL);
    A.queued = metrics_register(GGL_METRIC_COUNTER, "memory_queued_total", "requests handed to memory workers", NULL);
    A.writes = calloc(A.nwriters, sizeof *A.writes);
    A.threads = calloc(A.nwriters, sizeof *A.threads);
    if (!A.writes || !A.threads)
        goto fail;
    for (size_t i = 0; i < A.nwriters; i++)
        fifo_init(&A.writes[i], (size_t)c->queue_capacity, (size_t)(c->pending_max > 0 ? c->pending_max : 1));
    A.started = 1;
    A.running = 1;
    for (size_t i = 0; i < A.nwriters; i++)
        if (pthread_create(&A.threads[A.nthreads], NULL, write_worker, &A.writes[i]) == 0)
            A.nthreads++;
    if (A.nthreads == A.nwriters)
        return 0;
    log_error("memory: could not start %zu workers", A.nwriters - A.nthreads);
    memory_async_stop();
    memory_async_free();
    return -1;
fail:
    free(A.writes);
    free(A.threads);
    return -1;
}

void memory_async_stop(void)
{
    if (!A.running)
        return;
    A.running = 0; /* new submissions answer UNAVAILABLE; the queues refuse stragglers */
    for (size_t i = 0; i < A.nwriters; i++) /* workers drain their queue, then exit */
        fifo_stop(&A.writes[i]);
    for (size_t i = 0; i < A.nthreads; i++)
        pthread_join(A.threads[i], NULL);
    A.nthreads = 0;
}

void memory_async_free(void)
{
    memory_async_stop();
    if (!A.started)
        return;
    for (size_t i = 0; i < A.nwriters; i++)
        fifo_destroy(&A.writes[i]);
    free(A.writes);
    free(A.threads);
    A.writes = NULL;
    A.threads = NULL;
    A.started = 0;
}
