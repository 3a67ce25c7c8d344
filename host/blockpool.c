/* Blocks (blockpool.h): each thread keeps a magazine to allocate from and one it frees
 * into; a full free magazine goes to a shared, bounded depot under a mutex, and an empty
 * allocation magazine takes one from there.  So threads meet once per MAG_BLOCKS blocks,
 * not per block.  Magazines of a thread that exits are freed by a key destructor. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>

#include "blockpool.h"

#define MAG_BLOCKS 32
#define DEPOT_MAX 256 /* magazines kept in the depot (2 MB of blocks); beyond, freed */

struct block {
    struct block *next;    /* in its magazine */
    struct block *next_mag; /* the first block of a magazine in the depot: the next one */
};

struct mag {
    struct block *head;
    unsigned n;
};

static pthread_mutex_t depot_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block *depot;   /* full magazines, linked through their first block */
static unsigned depot_n;

static _Thread_local struct mag mine[2]; /* [0]: allocate from, [1]: free into */
static _Thread_local int registered;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void free_list(struct block *b)
{
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

static void thread_gone(void *arg)
{
    struct mag *m = arg;
    free_list(m[0].head);
    free_list(m[1].head);
    m[0] = m[1] = (struct mag){NULL, 0};
}

static void make_key(void) { pthread_key_create(&key, thread_gone); }

static void register_thread(void)
{
    pthread_once(&key_once, make_key);
    pthread_setspecific(key, mine);
    registered = 1;
}

void *block_get(void)
{
    struct mag *a = &mine[0];
    if (!a->head && mine[1].head) { /* this thread frees too: use what it gave back */
        *a = mine[1];
        mine[1] = (struct mag){NULL, 0};
    }
    if (!a->head) {
        pthread_mutex_lock(&depot_mu);
        struct block *m = depot;
        if (m) {
            depot = m->next_mag;
            depot_n--;
        }
        pthread_mutex_unlock(&depot_mu);
        if (!m)
            return malloc(BLOCK_SIZE);
        a->head = m;
        a->n = MAG_BLOCKS;
        if (!registered)
            register_thread();
    }
    struct block *b = a->head;
    a->head = b->next;
    a->n--;
    return b;
}

void block_put(void *p)
{
    struct block *b = p;
    struct mag *f = &mine[1];
    if (!registered)
        register_thread();
    b->next = f->head;
    f->head = b;
    if (++f->n < MAG_BLOCKS)
        return;
    struct block *m = f->head;
    *f = (struct mag){NULL, 0};
    pthread_mutex_lock(&depot_mu);
    int keep = depot_n < DEPOT_MAX;
    if (keep) {
        m->next_mag = depot;
        depot = m;
        depot_n++;
    }
    pthread_mutex_unlock(&depot_mu);
    if (!keep)
        free_list(m);
}
