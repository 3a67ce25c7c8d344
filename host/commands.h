/* The control command table: one row per command (name, handler, arity, flags).  A
 * new command is one row in commands.c; control.c dispatches every request through it. */
#ifndef GGL_HOST_COMMANDS_H
#define GGL_HOST_COMMANDS_H

#include <stddef.h>

#include "resp.h"

struct control;
struct job;

enum command_flags {
    CMD_WORKER = 1 << 0, /* runs on a worker thread, off the I/O thread */
    CMD_NOAUTH = 1 << 1, /* allowed before AUTH */
    CMD_DEBUG = 1 << 2,  /* exists only with control.debug_commands = true */
};

/* Per-connection state that commands may change (I/O thread only). */
struct session {
    int authed;
    int close_after_reply; /* set by a handler: close once this reply is sent */
};

struct cmd_call {
    const struct request *req;
    struct buf *out;       /* where the reply goes */
    struct control *ctl;   /* NULL on a worker */
    struct session *sess;  /* NULL on a worker */
    struct job *job;       /* the worker's job (offload_wait), NULL on the I/O thread */
    struct conn *conn;     /* I/O thread: the connection, for conn_defer */
};

struct command {
    const char *name;
    void (*fn)(struct cmd_call *call);
    int arity;       /* argc including the name; negative: at least -arity */
    unsigned flags;
    const char *summary;
};

/* The row for a command name (case-insensitive), or NULL. */
const struct command *command_find(const char *name);
/* Does argc fit cmd's arity? */
int command_arity_ok(const struct command *cmd, int argc);

#endif
