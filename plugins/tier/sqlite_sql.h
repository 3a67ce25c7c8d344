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

enum stmt { GET, PUT_ANY, PUT_NEWER, PUT_EQUAL, DEL_ANY, DEL_EQUAL, SCAN, STATS, BEGIN, COMMIT,
            ROLLBACK, SAVE, RELEASE, UNDO, NSTMT };

/* Statement n's text (n == NSTMT: the MULTI_ROWS-row insert); built ones are written
 * into buf, of at least STATEMENT_TEXT_MAX bytes. */
const char *sqlite_statement(int n, char *buf, size_t size);

#endif
