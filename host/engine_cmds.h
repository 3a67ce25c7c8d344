/* The TASK.* control commands (rows in commands.c, handlers in engine_cmds.c). */
#ifndef GGL_HOST_ENGINE_CMDS_H
#define GGL_HOST_ENGINE_CMDS_H

#include "commands.h"

void cmd_task_submit(struct cmd_call *call);  /* TASK.SUBMIT type payload [PRIORITY p] [TIMEOUT ms] [RETRIES n] */
void cmd_task_result(struct cmd_call *call);  /* TASK.RESULT id [WAIT ms] */
void cmd_task_status(struct cmd_call *call);  /* TASK.STATUS id */
void cmd_task_cancel(struct cmd_call *call);  /* TASK.CANCEL id */

#endif
