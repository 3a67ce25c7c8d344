/* Handlers of the environment and agent commands (environment_cmds.c), rows in
 * commands.c: STATE.GET/SET/HISTORY/WATCH, AGENT.STATE/SET, ORCH.PUBLISH. */
#ifndef GGL_HOST_ENVIRONMENT_CMDS_H
#define GGL_HOST_ENVIRONMENT_CMDS_H

#include "commands.h"

void cmd_state_get(struct cmd_call *call);
void cmd_state_set(struct cmd_call *call);
void cmd_state_history(struct cmd_call *call);
void cmd_state_watch(struct cmd_call *call);
void cmd_agent_state(struct cmd_call *call);
void cmd_agent_set(struct cmd_call *call);
void cmd_orch_publish(struct cmd_call *call);

#endif
