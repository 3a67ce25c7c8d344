/* tier/sqlite's statements (see sqlite_sql.h): fixed texts, and the two built from
 * parts, the single-row and the MULTI_ROWS-row insert-if-newer. */
#include <stdio.h>

#include "sqlite_sql.h"

#define LIVE "(expires_ms = 0 OR expires_ms > ?11)"
#define COLS "value, version, importance, flags, created_ms, last_access_ms, access_count, expires_ms"
#define INSERT "INSERT INTO entries(key, " COLS ") VALUES "
#define ON_CONFLICT                                                                         \
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version, "     \
    "importance = excluded.importance, flags = excluded.flags, created_ms = excluded.created_ms, " \
    "last_access_ms = excluded.last_access_ms, access_count = excluded.access_count, "       \
    "expires_ms = excluded.expires_ms"
#define IF_NEWER " WHERE excluded.version > entries.version OR (entries.expires_ms != 0 AND " \
                 "entries.expires_ms <= ?%d)"
#define UPSERT INSERT "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)" ON_CONFLICT
static const char *const sql[NSTMT] = {
    [GET] = "SELECT " COLS " FROM entries WHERE key = ?1", /* expiry checked by get_on */
    [PUT_ANY] = UPSERT,
    [PUT_NEWER] = NULL, /* UPSERT IF_NEWER with ?11: built */
    [PUT_EQUAL] = "UPDATE entries SET value = ?2, version = ?3, importance = ?4, flags = ?5, "
                  "created_ms = ?6, last_access_ms = ?7, access_count = ?8, expires_ms = ?9 "
                  "WHERE key = ?1 AND version = ?10 AND " LIVE,
    [DEL_ANY] = "DELETE FROM entries WHERE key = ?1 AND " LIVE,
    [DEL_EQUAL] = "DELETE FROM entries WHERE key = ?1 AND version = ?10 AND " LIVE,
    [SCAN] = "SELECT " COLS ", key, id FROM entries WHERE id > ?12 AND " LIVE
             " ORDER BY id LIMIT ?13",
    /* up to ?13 rows past their expiry, found through the partial index entries_expiry */
    [PURGE] = "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires_ms != 0 "
              "AND expires_ms <= ?11 LIMIT ?13)",
    [STATS] = "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM entries",
    [MAX_VERSION] = "SELECT coalesce(max(version), 0) FROM entries",
    [BEGIN] = "BEGIN IMMEDIATE",
    [COMMIT] = "COMMIT",
    [ROLLBACK] = "ROLLBACK",
    [SAVE] = "SAVEPOINT chunk",
    [RELEASE] = "RELEASE chunk",
    [UNDO] = "ROLLBACK TO chunk",
};

/* Row r's parameter number for column j (1 .. ROW_PARAMS) of the multi-row insert. */
static int param(int r, int j, int shared)
{
    if (!shared)
        return r * ROW_PARAMS + j;
    return j <= HEAD_PARAMS ? r * HEAD_PARAMS + j : MULTI_ROWS * HEAD_PARAMS + j - HEAD_PARAMS;
}

const char *sqlite_statement(int n, char *buf, size_t size)
{
    if (n < NSTMT && n != PUT_NEWER)
        return sql[n];
    if (n == PUT_NEWER) {
        snprintf(buf, size, UPSERT IF_NEWER, 11);
        return buf;
    }
    int shared = n == MULTI_SHARED;
    size_t len = (size_t)snprintf(buf, size, "%s", INSERT);
    for (int r = 0; r < MULTI_ROWS; r++) {
        len += (size_t)snprintf(buf + len, size - len, "%s(", r ? "," : "");
        for (int j = 1; j <= ROW_PARAMS; j++)
            len += (size_t)snprintf(buf + len, size - len, "?%d%s", param(r, j, shared),
                                    j < ROW_PARAMS ? "," : ")");
    }
    len += (size_t)snprintf(buf + len, size - len, "%s", ON_CONFLICT);
    snprintf(buf + len, size - len, IF_NEWER, param(MULTI_ROWS - 1, ROW_PARAMS, shared) + 1);
    return buf;
}
