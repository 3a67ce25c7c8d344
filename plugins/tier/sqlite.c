/* tier/sqlite: long-term memory in a SQLite file.  WAL, prepared statements, a pool of
 * connections (each used by one thread at a time), batches in one transaction,
 * conditional writes in SQL (upsert ... WHERE excluded.version > version), and a
 * versioned schema created on first open.  A commit is durable across kill -9.
 * Keys found absent are remembered (sqlite_absent.c), so this process must be the
 * file's only writer while it has it open (absent_keys = 0 lifts that).  The
 * instance's own writers take SQLite's write lock in turn (sqlite_turns.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sqlite3.h>

#include <ganglion/ganglion.h>

#include "sqlite_absent.h"
#include "sqlite_sql.h"
#include "sqlite_turns.h"

#define SCHEMA_VERSION 1

struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[NSTMT];
    sqlite3_stmt *multi[2]; /* MULTI_ROWS rows, insert-if-newer; [1]: shared metadata */
    struct conn *next;
};

struct ltm {
    const struct ggl_host *host;
    const char *path, *synchronous;
    int64_t busy_ms, mmap_bytes, absent_keys;
    struct absent *absent; /* keys known to have no row */
    int schema_checked;
    pthread_mutex_t lock;
    struct conn *idle; /* connections not in use */
    struct turns turns; /* write transactions, first come first served */
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("path", GGL_SETTING_STRING, "ltm.db", "database file (created if missing)"),
    GGL_SETTING("synchronous", GGL_SETTING_STRING, "NORMAL",
                "NORMAL (durable across process crashes) or FULL (also power loss)"),
    GGL_SETTING("busy_timeout_ms", GGL_SETTING_INT, "5000", "wait for a lock this long, then RETRY"),
    GGL_SETTING("mmap_bytes", GGL_SETTING_INT, "268435456", "memory-mapped I/O size; 0 = off"),
    GGL_SETTING("absent_keys", GGL_SETTING_INT, "65536",
                "keys remembered as absent (a get of one runs no SQL); 0 = off, needed when "
                "another process or backend instance writes the same file"),
    GGL_SETTINGS_END};

/* Map a SQLite result to a status, leaving the reason with the host. */
static enum ggl_status fail(struct ltm *l, sqlite3 *db, int rc, const char *what)
{
    l->host->set_reason(l->host, "%s: %s: %s", l->path, what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL: return GGL_RETRY;
    case SQLITE_NOMEM: return GGL_NOMEM;
    default: return GGL_ERROR;
    }
}

static void conn_free(struct conn *c)
{
    for (int i = 0; i < NSTMT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_finalize(c->multi[0]);
    sqlite3_finalize(c->multi[1]);
    sqlite3_close(c->db);
    free(c);
}

static int exec(sqlite3 *db, const char *text) { return sqlite3_exec(db, text, NULL, NULL, NULL); }

/* Create the schema on first open; refuse a file from a newer plugin. */
static enum ggl_status schema(struct ltm *l, sqlite3 *db)
{
    sqlite3_stmt *st;
    int version = -1, rc = exec(db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK)
        return fail(l, db, rc, "schema");
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version == 0)
        rc = exec(db, "CREATE TABLE entries (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, "
                      "value BLOB NOT NULL, version INTEGER NOT NULL, importance REAL NOT NULL, "
                      "flags INTEGER NOT NULL, created_ms INTEGER NOT NULL, "
                      "last_access_ms INTEGER NOT NULL, access_count INTEGER NOT NULL, "
                      "expires_ms INTEGER NOT NULL);"
                      "CREATE INDEX entries_expiry ON entries(expires_ms) WHERE expires_ms != 0;"
                      "PRAGMA user_version = 1");
    if (rc == SQLITE_OK && version != 0 && version != SCHEMA_VERSION) {
        exec(db, "ROLLBACK");
        l->host->set_reason(l->host, "%s: schema version %d, this plugin knows %d", l->path,
                            version, SCHEMA_VERSION);
        return GGL_INVALID;
    }
    if (rc != SQLITE_OK || (rc = exec(db, "COMMIT")) != SQLITE_OK) {
        enum ggl_status s = fail(l, db, rc, "schema");
        exec(db, "ROLLBACK");
        return s;
    }
    return GGL_OK;
}

static enum ggl_status conn_open(struct ltm *l, struct conn **out)
{
    char pragmas[256];
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return GGL_NOMEM;
    int rc = sqlite3_open_v2(l->path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    enum ggl_status s = GGL_OK;
    if (rc != SQLITE_OK) {
        s = fail(l, c->db, rc, "open");
        goto out;
    }
    sqlite3_busy_timeout(c->db, (int)l->busy_ms);
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA mmap_size = %lld",
             l->synchronous, (long long)l->mmap_bytes);
    if ((rc = exec(c->db, pragmas)) != SQLITE_OK) {
        s = fail(l, c->db, rc, "pragmas");
        goto out;
    }
    if (!l->schema_checked) { /* the first connection, opened by sq_open, checks it */
        if ((s = schema(l, c->db)) != GGL_OK)
            goto out;
        l->schema_checked = 1;
    }
    static char text[STATEMENT_TEXT_MAX];
    static pthread_mutex_t text_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&text_lock);
    for (int i = 0; i <= MULTI_SHARED; i++)
        if ((rc = sqlite3_prepare_v3(c->db, sqlite_statement(i, text, sizeof text), -1,
                                     SQLITE_PREPARE_PERSISTENT,
                                     i < NSTMT ? &c->st[i] : &c->multi[i - MULTI], NULL)) !=
            SQLITE_OK)
            break;
    pthread_mutex_unlock(&text_lock);
    if (rc != SQLITE_OK) {
        s = fail(l, c->db, rc, "prepare");
        goto out;
    }
out:
    if (s != GGL_OK)
        conn_free(c);
    else
        *out = c;
    return s;
}

/* A connection for this call: an idle one, or a new one. */
static struct conn *acquire(struct ltm *l, enum ggl_status *s)
{
    pthread_mutex_lock(&l->lock);
    struct conn *c = l->idle;
    if (c)
        l->idle = c->next;
    pthread_mutex_unlock(&l->lock);
    *s = GGL_OK;
    if (!c)
        *s = conn_open(l, &c);
    return c;
}

static void release(struct ltm *l, struct conn *c)
{
    pthread_mutex_lock(&l->lock);
    c->next = l->idle;
    l->idle = c;
    pthread_mutex_unlock(&l->lock);
}

static enum ggl_status sq_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct ltm *l = calloc(1, sizeof *l);
    if (!l)
        return GGL_NOMEM;
    l->host = host;
    host->conf_string(conf, "path", &l->path);
    host->conf_string(conf, "synchronous", &l->synchronous);
    host->conf_int(conf, "busy_timeout_ms", &l->busy_ms);
    host->conf_int(conf, "mmap_bytes", &l->mmap_bytes);
    host->conf_int(conf, "absent_keys", &l->absent_keys);
    if ((strcmp(l->synchronous, "NORMAL") != 0 && strcmp(l->synchronous, "FULL") != 0) ||
        l->absent_keys < 0) {
        host->set_reason(host, "synchronous must be \"NORMAL\" or \"FULL\" (not \"%s\") and "
                               "absent_keys >= 0", l->synchronous);
        free(l);
        return GGL_INVALID;
    }
    if (!(l->absent = absent_new((size_t)l->absent_keys))) {
        free(l);
        return GGL_NOMEM;
    }
    pthread_mutex_init(&l->lock, NULL);
    turns_init(&l->turns);
    struct conn *c;
    enum ggl_status s = conn_open(l, &c); /* creates the file and schema now */
    if (s != GGL_OK) {
        turns_fini(&l->turns);
        pthread_mutex_destroy(&l->lock);
        absent_free(l->absent);
        free(l);
        return s;
    }
    l->idle = c;
    *self = l;
    return GGL_OK;
}

static void sq_close(void *self)
{
    struct ltm *l = self;
    while (l->idle) {
        struct conn *c = l->idle;
        l->idle = c->next;
        conn_free(c);
    }
    turns_fini(&l->turns);
    pthread_mutex_destroy(&l->lock);
    absent_free(l->absent);
    free(l);
}

static void bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob64(st, i, p ? p : "", n, SQLITE_STATIC); /* NULL would bind SQL NULL */
}

/* Bind e's key, value and version to ?(base+1) .. ?(base+3). */
static void bind_head(sqlite3_stmt *st, int base, const struct ggl_entry *e)
{
    bind_blob(st, base + 1, e->key, e->key_len);
    bind_blob(st, base + 2, e->value, e->value_len);
    sqlite3_bind_int64(st, base + 3, (sqlite3_int64)e->version);
}

/* Bind the rest of e's columns (importance .. expiry) to ?(base+1) .. ?(base+6). */
static void bind_meta(sqlite3_stmt *st, int base, const struct ggl_entry *e)
{
    sqlite3_bind_double(st, base + 1, e->importance);
    sqlite3_bind_int64(st, base + 2, e->flags);
    sqlite3_bind_int64(st, base + 3, (sqlite3_int64)e->created_ms);
    sqlite3_bind_int64(st, base + 4, (sqlite3_int64)e->last_access_ms);
    sqlite3_bind_int64(st, base + 5, (sqlite3_int64)e->access_count);
    sqlite3_bind_int64(st, base + 6, (sqlite3_int64)e->expires_ms);
}

/* Bind e's columns to ?(base+1) .. ?(base+9). */
static void bind_row(sqlite3_stmt *st, int base, const struct ggl_entry *e)
{
    bind_head(st, base, e);
    bind_meta(st, base + HEAD_PARAMS, e);
}

/* Do the n entries share their metadata past the version (MULTI_SHARED applies)? */
static int same_meta(const struct ggl_entry *es, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (es[i].importance != es[0].importance || es[i].flags != es[0].flags ||
            es[i].created_ms != es[0].created_ms || es[i].last_access_ms != es[0].last_access_ms ||
            es[i].access_count != es[0].access_count || es[i].expires_ms != es[0].expires_ms)
            return 0;
    return 1;
}

/* Bind MULTI_ROWS entries and now to the multi-row insert; the statement used. */
static sqlite3_stmt *bind_rows(struct conn *c, const struct ggl_entry *es, uint64_t now)
{
    int shared = same_meta(es, MULTI_ROWS), width = shared ? HEAD_PARAMS : ROW_PARAMS;
    sqlite3_stmt *st = c->multi[shared];
    for (int r = 0; r < MULTI_ROWS; r++)
        (shared ? bind_head : bind_row)(st, r * width, &es[r]);
    if (shared)
        bind_meta(st, MULTI_ROWS * HEAD_PARAMS, &es[0]);
    sqlite3_bind_int64(st, MULTI_ROWS * width + (shared ? SHARED_PARAMS : 0) + 1,
                       (sqlite3_int64)now);
    return st;
}

static void bind_entry(sqlite3_stmt *st, const struct ggl_entry *e, uint64_t expect, uint64_t now)
{
    bind_row(st, 0, e);
    if (sqlite3_bind_parameter_count(st) >= 10)
        sqlite3_bind_int64(st, 10, (sqlite3_int64)expect);
    if (sqlite3_bind_parameter_count(st) >= 11)
        sqlite3_bind_int64(st, 11, (sqlite3_int64)now);
}

/* Run a write statement to completion; *changed gets the rows it touched. */
static enum ggl_status step_write(struct ltm *l, struct conn *c, sqlite3_stmt *st, int *changed)
{
    int rc = sqlite3_step(st);
    *changed = sqlite3_changes(c->db);
    sqlite3_reset(st); /* bindings stay: every statement binds all it uses each time */
    return rc == SQLITE_DONE ? GGL_OK : fail(l, c->db, rc, "write");
}

/* Fill *out from a row whose first columns are COLS.  The value is copied. */
static enum ggl_status read_row(struct ltm *l, sqlite3_stmt *st, struct ggl_entry *out)
{
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    const void *v = sqlite3_column_blob(st, 0);
    void *copy = l->host->alloc(n);
    if (!copy)
        return GGL_NOMEM;
    if (n)
        memcpy(copy, v, n);
    out->value = copy;
    out->value_len = n;
    out->version = (uint64_t)sqlite3_column_int64(st, 1);
    out->importance = sqlite3_column_double(st, 2);
    out->flags = (uint32_t)sqlite3_column_int64(st, 3);
    out->created_ms = (uint64_t)sqlite3_column_int64(st, 4);
    out->last_access_ms = (uint64_t)sqlite3_column_int64(st, 5);
    out->access_count = (uint64_t)sqlite3_column_int64(st, 6);
    out->expires_ms = (uint64_t)sqlite3_column_int64(st, 7);
    return GGL_OK;
}

/* The row of key: GGL_OK, or GGL_NOTFOUND with *no_row set when there was none at all
 * (an expired row is absent too, but would come back under an earlier clock). */
static enum ggl_status get_row(struct ltm *l, struct conn *c, const void *key, size_t len,
                               struct ggl_entry *out, int *no_row)
{
    sqlite3_stmt *st = c->st[GET];
    bind_blob(st, 1, key, len);
    int rc = sqlite3_step(st);
    *no_row = rc == SQLITE_DONE;
    enum ggl_status s = *no_row ? GGL_NOTFOUND : rc != SQLITE_ROW ? fail(l, c->db, rc, "get")
                                                                  : GGL_OK;
    if (s == GGL_OK) {
        uint64_t expires = (uint64_t)sqlite3_column_int64(st, 7);
        if (expires && expires <= l->host->now(l->host))
            s = GGL_NOTFOUND;
        else if ((s = read_row(l, st, out)) == GGL_OK)
            out->key = key, out->key_len = len;
    }
    sqlite3_reset(st);
    return s;
}

static enum ggl_status get_on(struct ltm *l, struct conn *c, const void *key, size_t len,
                              struct ggl_entry *out)
{
    int no_row;
    return get_row(l, c, key, len, out, &no_row);
}

/* A get of a key not known absent (absent_known gave the token): the absent set is
 * told when the table had no row. */
static enum ggl_status lookup(struct ltm *l, struct conn *c, const void *key, size_t len,
                              struct ggl_entry *out, uint64_t token)
{
    int no_row;
    enum ggl_status s = get_row(l, c, key, len, out, &no_row);
    if (no_row)
        absent_note(l->absent, key, len, token);
    return s;
}

static enum ggl_status put_on(struct ltm *l, struct conn *c, const struct ggl_entry *e,
                              uint64_t expect, uint64_t now)
{
    enum stmt which = expect == GGL_VERSION_ANY ? PUT_ANY
                      : expect == GGL_VERSION_OLDER ? PUT_NEWER : PUT_EQUAL;
    int changed;
    bind_entry(c->st[which], e, expect, now);
    enum ggl_status s = step_write(l, c, c->st[which], &changed);
    return s == GGL_OK && changed == 0 ? GGL_CONFLICT : s;
}

/* Our turn at SQLite's write lock, waited for at most busy_timeout_ms, as SQLite would. */
static enum ggl_status take_turn(struct ltm *l)
{
    if (turns_take(&l->turns, l->busy_ms) == 0)
        return GGL_OK;
    l->host->set_reason(l->host, "%s: this instance's other writers kept the write lock for "
                                 "busy_timeout_ms (%lld)", l->path, (long long)l->busy_ms);
    return GGL_RETRY;
}

static enum ggl_status sq_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct ltm *l = self;
    enum ggl_status s;
    uint64_t token;
    if (absent_known(l->absent, key, len, &token))
        return GGL_NOTFOUND; /* no connection needed */
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    s = lookup(l, c, key, len, out, token);
    release(l, c);
    return s;
}

static enum ggl_status sq_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct ltm *l = self;
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    if ((s = take_turn(l)) == GGL_OK) {
        absent_write_begin(l->absent, e->key, e->key_len);
        s = put_on(l, c, e, expect, l->host->now(l->host));
        absent_write_end(l->absent, e->key, e->key_len);
        turns_give(&l->turns);
    }
    release(l, c);
    return s;
}

static enum ggl_status sq_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct ltm *l = self;
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    if ((s = take_turn(l)) != GGL_OK) {
        release(l, c);
        return s;
    }
    sqlite3_stmt *st = c->st[expect == GGL_VERSION_ANY ? DEL_ANY : DEL_EQUAL];
    int changed;
    bind_blob(st, 1, key, len);
    if (expect != GGL_VERSION_ANY)
        sqlite3_bind_int64(st, 10, (sqlite3_int64)expect);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)l->host->now(l->host));
    s = step_write(l, c, st, &changed);
    turns_give(&l->turns);
    if (s == GGL_OK && changed == 0) {
        /* Absent, or present with another version? */
        struct ggl_entry e = {.size = sizeof e};
        s = get_on(l, c, key, len, &e);
        if (s == GGL_OK) {
            l->host->free(e.value);
            s = GGL_CONFLICT;
        }
    }
    release(l, c);
    return s;
}

/* Run a statement from the BEGIN/COMMIT/ROLLBACK rows. */
static enum ggl_status txn(struct ltm *l, struct conn *c, enum stmt which)
{
    int changed;
    return step_write(l, c, c->st[which], &changed);
}

/* MULTI_ROWS entries insert-if-newer in one statement inside a savepoint.  When every
 * row was written, each status is GGL_OK; else the chunk is undone and put row by row,
 * which tells the rows that lost (GGL_CONFLICT) from the others. */
static void put_rows(struct ltm *l, struct conn *c, const struct ggl_entry *es, uint64_t expect,
                     uint64_t now, enum ggl_status *status)
{
    enum ggl_status s = txn(l, c, SAVE);
    int changed = 0;
    if (s == GGL_OK) {
        sqlite3_stmt *st = bind_rows(c, es, now);
        if ((s = step_write(l, c, st, &changed)) == GGL_OK && changed == MULTI_ROWS) {
            txn(l, c, RELEASE);
            for (int r = 0; r < MULTI_ROWS; r++)
                status[r] = GGL_OK;
            return;
        }
        if (sqlite3_get_autocommit(c->db)) { /* the transaction is gone (SQLITE_FULL) */
            for (int r = 0; r < MULTI_ROWS; r++)
                status[r] = s != GGL_OK ? s : GGL_ERROR;
            return;
        }
        txn(l, c, UNDO); /* a failure, or a row that lost: then learn which, one by one */
        txn(l, c, RELEASE);
    }
    /* Unconditional rows (fresh versions) lose only to a clock stepped back: rewritten
     * unconditionally; insert-if-newer rows learn one by one which lost. */
    for (int r = 0; r < MULTI_ROWS; r++)
        status[r] = s == GGL_OK ? put_on(l, c, &es[r], expect, now) : s;
}

static enum ggl_status sq_put_batch(void *self, const struct ggl_entry *es, size_t n,
                                    uint64_t expect, enum ggl_status *status)
{
    struct ltm *l = self;
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    uint64_t now = l->host->now(l->host);
    if ((s = take_turn(l)) != GGL_OK) {
        for (size_t i = 0; i < n; i++)
            status[i] = s;
        release(l, c);
        return s;
    }
    uint64_t *hashes = absent_batch_begin(l->absent, es, n); /* until the commit, readers
                                                               see no row yet */
    if ((s = txn(l, c, BEGIN)) == GGL_OK) {
        /* SQLite rolls the whole transaction back itself on some errors (SQLITE_FULL):
         * then stop, keep that error's reason, and commit nothing. */
        size_t i = 0;
        int multi = expect == GGL_VERSION_ANY || expect == GGL_VERSION_OLDER; /* not CAS */
        for (; multi && i + MULTI_ROWS <= n && !sqlite3_get_autocommit(c->db); i += MULTI_ROWS)
            put_rows(l, c, &es[i], expect, now, &status[i]);
        for (; i < n && !sqlite3_get_autocommit(c->db); i++)
            status[i] = put_on(l, c, &es[i], expect, now);
        enum ggl_status first = GGL_OK;
        for (size_t k = 0; k < i && first == GGL_OK; k++)
            if (status[k] != GGL_OK && status[k] != GGL_CONFLICT)
                first = status[k];
        if (sqlite3_get_autocommit(c->db))
            s = first != GGL_OK ? first : GGL_ERROR;
        else if ((s = txn(l, c, COMMIT)) != GGL_OK && !sqlite3_get_autocommit(c->db))
            exec(c->db, "ROLLBACK"); /* quietly: the COMMIT's reason is the one to report */
    }
    absent_batch_end(l->absent, es, n, hashes);
    turns_give(&l->turns);
    for (size_t i = 0; s != GGL_OK && i < n; i++)
        status[i] = s; /* nothing was committed */
    release(l, c);
    return s;
}

static enum ggl_status sq_get_batch(void *self, const void *const *keys, const size_t *lens,
                                    size_t n, struct ggl_entry *out, enum ggl_status *status)
{
    struct ltm *l = self;
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    exec(c->db, "BEGIN"); /* one read transaction for the batch */
    for (size_t i = 0; i < n; i++) {
        uint64_t token;
        status[i] = absent_known(l->absent, keys[i], lens[i], &token)
                        ? GGL_NOTFOUND : lookup(l, c, keys[i], lens[i], &out[i], token);
    }
    exec(c->db, "COMMIT");
    release(l, c);
    return GGL_OK;
}

#define PURGE_ROWS 4096 /* expired rows deleted when a walk starts */

/* Delete up to PURGE_ROWS rows past their expiry: reads never answer them, and left in
 * place they would take room and count in stats until overwritten.  The host's
 * maintenance walks the tier with scan, so each walk's start trims (as tier/cache's scan
 * drops what it passes).  With the write lock taken it does not wait (the walk would,
 * up to busy_timeout_ms): busy or failing, it is left for the next walk. */
static void purge_expired(struct ltm *l, struct conn *c, uint64_t now)
{
    if (turns_take(&l->turns, 0) < 0)
        return;
    sqlite3_stmt *st = c->st[PURGE];
    sqlite3_bind_int64(st, 11, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 13, PURGE_ROWS);
    sqlite3_busy_timeout(c->db, 0);
    sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_busy_timeout(c->db, (int)l->busy_ms);
    turns_give(&l->turns);
}

static enum ggl_status sq_scan(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg)
{
    struct ltm *l = self;
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    uint64_t now = l->host->now(l->host);
    if (*cursor == 0)
        purge_expired(l, c, now);
    sqlite3_stmt *st = c->st[SCAN];
    sqlite3_bind_int64(st, 11, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)*cursor);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)count);
    size_t seen = 0;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ggl_entry e = {.size = sizeof e};
        e.value = (void *)sqlite3_column_blob(st, 0); /* borrowed for the callback */
        e.value_len = (size_t)sqlite3_column_bytes(st, 0);
        e.version = (uint64_t)sqlite3_column_int64(st, 1);
        e.importance = sqlite3_column_double(st, 2);
        e.flags = (uint32_t)sqlite3_column_int64(st, 3);
        e.created_ms = (uint64_t)sqlite3_column_int64(st, 4);
        e.last_access_ms = (uint64_t)sqlite3_column_int64(st, 5);
        e.access_count = (uint64_t)sqlite3_column_int64(st, 6);
        e.expires_ms = (uint64_t)sqlite3_column_int64(st, 7);
        e.key = sqlite3_column_blob(st, 8);
        e.key_len = (size_t)sqlite3_column_bytes(st, 8);
        *cursor = (uint64_t)sqlite3_column_int64(st, 9);
        seen++;
        stop = fn(arg, &e);
    }
    if (!stop && rc != SQLITE_DONE)
        s = fail(l, c->db, rc, "scan");
    else if (!stop && seen < count)
        *cursor = 0; /* the end */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    release(l, c);
    return s;
}

/* Step statement `which` (a one-row query) on a pooled connection; take() reads the row. */
static enum ggl_status one_row(struct ltm *l, enum stmt which, const char *what,
                               void (*take)(sqlite3_stmt *st, void *out), void *out)
{
    enum ggl_status s;
    struct conn *c = acquire(l, &s);
    if (!c)
        return s;
    sqlite3_stmt *st = c->st[which];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        take(st, out);
    else
        s = fail(l, c->db, rc, what);
    sqlite3_reset(st);
    release(l, c);
    return s;
}

static void take_stats(sqlite3_stmt *st, void *out)
{
    struct ggl_tier_stats *t = out;
    t->entries = (uint64_t)sqlite3_column_int64(st, 0);
    t->bytes = (uint64_t)sqlite3_column_int64(st, 1);
}

static void take_u64(sqlite3_stmt *st, void *out)
{
    *(uint64_t *)out = (uint64_t)sqlite3_column_int64(st, 0);
}

static enum ggl_status sq_stats(void *self, struct ggl_tier_stats *out)
{
    return one_row(self, STATS, "stats", take_stats, out);
}

/* One walk of the table (no index on version: writes would pay for one), done when a
 * slot is bound to this instance. */
static enum ggl_status sq_max_version(void *self, uint64_t *out)
{
    return one_row(self, MAX_VERSION, "max_version", take_u64, out);
}

static const struct ggl_tier vtable = {
    .size = sizeof(struct ggl_tier),
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT,
    .open = sq_open,
    .close = sq_close,
    .get = sq_get,
    .put = sq_put,
    .del = sq_del,
    .put_batch = sq_put_batch,
    .get_batch = sq_get_batch,
    .scan = sq_scan,
    .stats = sq_stats,
    .max_version = sq_max_version,
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "sqlite", "0.1.0", "long-term memory in a SQLite file (WAL)",
                  settings, &vtable);
