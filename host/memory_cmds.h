/* The memory commands of the control socket: MEM.GET/MEM.PUT/MEM.DEL/MEM.STATS and the
 * Redis-compatible GET/SET/DEL.  Rows for them live in commands.c's table. */
#ifndef GGL_HOST_MEMORY_CMDS_H
#define GGL_HOST_MEMORY_CMDS_H

#include "commands.h"

void cmd_mem_get(struct cmd_call *call);   /* GET key | MEM.GET key [WITHMETA] */
void cmd_mem_put(struct cmd_call *call);
void cmd_mem_where(struct cmd_call *call);   /* SET key value | MEM.PUT key value [options] */
void cmd_mem_del(struct cmd_call *call);   /* DEL key [key ...] | MEM.DEL key [key ...] */
void cmd_mem_stats(struct cmd_call *call); /* MEM.STATS: the slots and counters */
void cmd_mem_maintain(struct cmd_call *call); /* MEM.MAINTAIN: one maintenance cycle now */
void cmd_plugin_swap(struct cmd_call *call);  /* PLUGIN.SWAP slot instance [MIGRATE] */

#endif
