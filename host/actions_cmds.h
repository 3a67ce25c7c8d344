/* The action commands of the control socket: ACTION.SUBMIT/RESULT/DEAD/REPLAY.  Rows
 * for them live in commands.c's table. */
#ifndef GGL_HOST_ACTIONS_CMDS_H
#define GGL_HOST_ACTIONS_CMDS_H

#include "commands.h"

void cmd_action_submit(struct cmd_call *call); /* name payload [PRIORITY p] [TIMEOUT ms] [RETRIES n] [KEY k] */
void cmd_action_result(struct cmd_call *call); /* id [WAIT ms] */
void cmd_action_dead(struct cmd_call *call);   /* [COUNT n] */
void cmd_action_replay(struct cmd_call *call); /* id */

#endif
