/* Environment snapshots: the whole state in one SQLite table, rewritten in one
 * transaction (so a crash mid-write leaves the previous snapshot), read back at start. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "environment_snap.h"
#include "log.h"

struct env_snap {
    sqlite3 *db;
    sqlite3_stmt *insert;
    char path[512];
};

static int exec(struct env_snap *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    log_error("environment: snapshot %s: %s: %s", s->path, sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
}

struct env_snap *env_snap_open(const char *path, char *err, size_t err_len)
{
    struct env_snap *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "environment: snapshot %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "cannot open");
        env_snap_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 1000);
    if (exec(s, "PRAGMA synchronous=NORMAL") < 0 ||
        exec(s, "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                "updated_ms INTEGER NOT NULL, source TEXT NOT NULL)") < 0 ||
        sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", -1,
                           &s->insert, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "environment: snapshot %s: %s", path, sqlite3_errmsg(s->db));
        env_snap_close(s);
        return NULL;
    }
    return s;
}

void env_snap_close(struct env_snap *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->insert);
    sqlite3_close(s->db);
    free(s);
}

int env_snap_begin(struct env_snap *s)
{
    return exec(s, "BEGIN IMMEDIATE") < 0 ? -1 : exec(s, "DELETE FROM state");
}

int env_snap_put(struct env_snap *s, const char *key, const char *value, size_t len,
                 uint64_t at_ms, const char *source)
{
    sqlite3_bind_text(s->insert, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s->insert, 2, value, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s->insert, 3, (sqlite3_int64)at_ms);
    sqlite3_bind_text(s->insert, 4, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->insert);
    sqlite3_reset(s->insert);
    if (rc == SQLITE_DONE)
        return 0;
    log_error("environment: snapshot %s: insert: %s", s->path, sqlite3_errmsg(s->db));
    return -1;
}

int env_snap_commit(struct env_snap *s, int ok)
{
    return exec(s, ok ? "COMMIT" : "ROLLBACK");
}

long env_snap_load(struct env_snap *s, env_snap_row_fn fn, void *arg)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT key, value, updated_ms, source FROM state ORDER BY key",
                           -1, &q, NULL) != SQLITE_OK) {
        log_error("environment: snapshot %s: %s", s->path, sqlite3_errmsg(s->db));
        return -1;
    }
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        const void *value = sqlite3_column_blob(q, 1);
        size_t len = (size_t)sqlite3_column_bytes(q, 1);
        const char *source = (const char *)sqlite3_column_text(q, 3);
        fn(arg, key ? key : "", value ? value : "", len, (uint64_t)sqlite3_column_int64(q, 2),
           source ? source : "");
        rows++;
    }
    if (rc != SQLITE_DONE)
        log_error("environment: snapshot %s: read: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? rows : -1;
}
