/* tier/sqlite's SQL: the text of every statement a connection prepares.  Parameters:
 * ?1 key, ?2 value, ?3 version, ?4 importance, ?5 flags, ?6 created, ?7 last access,
 * ?8 access count, ?9 expiry, ?10 expected version, ?11 now.  A row past its expiry is
 * absent. */
#ifndef GGL_TIER_SQLITE_SQL_H
#define GGL_TIER_SQLITE_SQL_H

#include <stddef.h>

#define ROW_PARAMS 9 /* ?1 .. ?9: one entry's columns */
/* put_batch's insert-if-newer of MULTI_ROWS rows in one statement (the statement's own
 * cost, ~2 k instructions, then paid once for them all): row r binds ?(9r+1) ..
 * ?(9r+9), now is ?(9 MULTI_ROWS + 1).  Inside a savepoint: if any row lost to a newer
 * one, the chunk is undone and written row by row to learn which. */
#define MULTI_ROWS 32
#define STATEMENT_TEXT_MAX 8192
/* The same insert for MULTI_ROWS entries whose metadata past the version is the same
 * (a memory_put_batch's: one clock reading, one write's settings), bound once: row r
 * binds key, value and version to ?(3r+1) .. ?(3r+3), the six shared columns are
 * ?(3 MULTI_ROWS + 1) .. ?(3 MULTI_ROWS + 6), now ?(3 MULTI_ROWS + 7).  Binding costs
 * ~90 instructions a value: this saves two thirds of a batch's. */
#define HEAD_PARAMS 3
#define SHARED_PARAMS (ROW_PARAMS - HEAD_PARAMS)

enum stmt { GET, PUT_ANY, PUT_NEWER, PUT_EQUAL, DEL_ANY, DEL_EQUAL, SCAN, PURGE, STATS, MAX_VERSION, BEGIN,
            COMMIT, ROLLBACK, SAVE, RELEASE, UNDO, NSTMT };
#define MULTI NSTMT            /* sqlite_statement's number of the MULTI_ROWS-row insert */
#define MULTI_SHARED (NSTMT + 1) /* and of the one with shared metadata */

/* Statement n's text (n < NSTMT, MULTI or MULTI_SHARED); built ones are written into
 * buf, of at least STATEMENT_TEXT_MAX bytes. */
const char *sqlite_statement(int n, char *buf, size_t size);

#endif
