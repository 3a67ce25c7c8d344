/* Control commands: the table every request is dispatched through, and the handlers of
 * the foundation commands (PING, ECHO, INFO, PLUGIN.LIST, CONFIG GET, AUTH, SHUTDOWN).
 * Later components add rows here. */
#include "ggl-build.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "actions.h"
#include "actions_cmds.h"
#include "commands.h"
#include "control.h"
#include "health.h"
#include "hostapi.h"
#include "environment.h"
#include "environment_cmds.h"
#include "engine_cmds.h"
#include "memory.h"
#include "memory_cmds.h"
#include "metrics.h"
#include "offload.h"
#include "orchestrator.h"
#include "registry.h"
#include "reload.h"
#include "swap.h"

static void cmd_ping(struct cmd_call *call)
{
    if (call->req->argc > 1)
        reply_bulk(call->out, call->req->argv[1], call->req->lens[1]);
    else
        reply_status(call->out, "PONG");
}

static void cmd_echo(struct cmd_call *call)
{
    reply_bulk(call->out, call->req->argv[1], call->req->lens[1]);
}

static void cmd_quit(struct cmd_call *call)
{
    reply_status(call->out, "OK");
    call->sess->close_after_reply = 1;
}

static void cmd_command(struct cmd_call *call); /* after the table it lists */

static void info_server(FILE *f, struct control *ctl)
{
    size_t n, open = 0;
    const struct instance *inst = control_instances(ctl, &n);
    if (registry_active())
        n = registry_count(&open);
    else
        for (size_t i = 0; i < n; i++)
            open += inst[i].state == INSTANCE_OPEN;
    fprintf(f, "# Server\r\nganglion_version:%s\r\nplugin_abi:%d.%d\r\nprocess_id:%ld\r\n"
               "uptime_in_seconds:%.0f\r\nconfig_file:%s\r\nplugin_instances:%zu\r\n"
               "plugin_instances_open:%zu\r\n",
            PACKAGE_VERSION, GGL_ABI_MAJOR, GGL_ABI_MINOR, (long)getpid(), control_uptime(ctl),
            control_config_path(ctl), n, open);
}

/* A reply written with stdio: reply_stream_open gives a memory stream in rs (NULL and
 * an error reply when out of memory), reply_stream_close sends it as one bulk string. */
struct reply_stream {
    char *text;
    size_t len;
};

static FILE *reply_stream_open(struct cmd_call *call, struct reply_stream *rs)
{
    *rs = (struct reply_stream){0};
    FILE *f = open_memstream(&rs->text, &rs->len);
    if (!f)
        reply_error(call->out, "ERR out of memory");
    return f;
}

static void reply_stream_close(struct cmd_call *call, struct reply_stream *rs, FILE *f)
{
    fclose(f);
    reply_bulk(call->out, rs->text, rs->len);
    free(rs->text);
}

/* INFO [section]: "server" or a metrics section; none, "all" or "default": everything. */
static void cmd_info(struct cmd_call *call)
{
    const char *section = call->req->argc > 1 ? call->req->argv[1] : NULL;
    if (section && (!strcasecmp(section, "all") || !strcasecmp(section, "default") ||
                    !strcasecmp(section, "everything")))
        section = NULL;
    struct reply_stream rs;
    FILE *f = reply_stream_open(call, &rs);
    if (!f)
        return;
    int server = !section || !strcasecmp(section, "server");
    if (server)
        info_server(f, call->ctl);
    if (!section || !server) {
        if (server)
            fputs("\r\n", f);
        metrics_render(f, section);
    }
    if (!section || !strcasecmp(section, "memory")) { /* the slots, beside the counters */
        char slots[4096];
        size_t n = memory_info(slots, sizeof slots);
        fprintf(f, "\r\n# Memory slots\r\n%.*s", (int)n, slots);
    }
    if (section && !strcasecmp(section, "swap")) { /* INFO memory has these lines too */
        char lines[2048];
        size_t n = swap_info(lines, sizeof lines);
        fprintf(f, "# Swap\r\n%.*s", (int)n, lines);
    }
    if (!section || !strcasecmp(section, "actions")) { /* percentiles and depths */
        fputs("\r\n# Actions now\r\n", f);
        actions_info(f);
    }
    if (!section || !strcasecmp(section, "environment")) {
        fputs("\r\n# Environment state\r\n", f);
        environment_info(f);
    }
    if (!section || !strcasecmp(section, "orchestrator")) {
        fputs("\r\n# Agent\r\n", f);
        orchestrator_info(f);
    }
    reply_stream_close(call, &rs, f);
}

/* METRICS: the registry in the Prometheus text format, as one bulk string. */
static void cmd_metrics(struct cmd_call *call)
{
    struct reply_stream rs;
    FILE *f = reply_stream_open(call, &rs);
    if (f) {
        metrics_render_prometheus(f);
        reply_stream_close(call, &rs, f);
    }
}

/* HEALTH: the overall state, then one [name, state, reason, checked_ms_ago] per
 * component, in registration order.  Reads the last results (checks run on the health
 * thread, outside its lock), so it never waits for a check. */
static void cmd_health(struct cmd_call *call)
{
    struct health_entry *e = malloc(HEALTH_MAX * sizeof *e);
    if (!e) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    enum health_state overall;
    size_t n = health_snapshot(e, HEALTH_MAX, &overall), bad = 0;
    if (n > HEALTH_MAX)
        n = HEALTH_MAX;
    for (size_t i = 0; i < n; i++)
        bad += e[i].checked_ms && e[i].state != HEALTH_OK;
    char summary[64];
    snprintf(summary, sizeof summary, "%zu of %zu components not ok", bad, n);
    reply_array(call->out, (long long)n + 1);
    reply_array(call->out, 3);
    reply_cstr(call->out, "overall");
    reply_cstr(call->out, health_state_name(overall));
    reply_cstr(call->out, summary);
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++) {
        reply_array(call->out, 4);
        reply_cstr(call->out, e[i].name);
        reply_cstr(call->out, e[i].checked_ms ? health_state_name(e[i].state) : "unknown");
        reply_cstr(call->out, e[i].reason);
        reply_int(call->out, e[i].checked_ms && now >= e[i].checked_ms
                                 ? (long long)(now - e[i].checked_ms) : -1);
    }
    free(e);
}

static void plugin_row(void *arg, const struct instance *i)
{
    struct buf *out = arg;
    const struct ggl_plugin *d = i->mod ? i->mod->desc : NULL;
    static const char *const states[] = {"open", "refused", "failed"};
    static const char *const lives[] = {"open", "draining", "zombie", "closed"};
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", d ? d->abi_major : 0, d ? d->min_host_minor : 0);
    const char *fields[] = {"kind", ggl_kind_str(i->conf->kind), "name", i->conf->plugin,
                            "instance", i->conf->name, "version", d ? d->version : "-",
                            "abi", d ? abi : "-", "file", i->mod ? i->mod->path : "-",
                            "state", i->state == INSTANCE_OPEN ? lives[i->life] : states[i->state],
                            "reason", i->reason};
    size_t n = sizeof fields / sizeof fields[0];
    reply_array(out, (long long)n);
    for (size_t k = 0; k < n; k++)
        reply_cstr(out, fields[k] ? fields[k] : "");
}

/* PLUGIN.LIST: one field/value array per instance, in open order: those of the start
 * and those reloads opened, with replaced ones "draining", "zombie" or "closed". */
static void cmd_plugin_list(struct cmd_call *call)
{
    size_t n, open;
    if (registry_active()) {
        reply_array(call->out, (long long)registry_count(&open));
        registry_each(plugin_row, call->out);
        return;
    }
    const struct instance *inst = control_instances(call->ctl, &n);
    reply_array(call->out, (long long)n);
    for (size_t i = 0; i < n; i++)
        plugin_row(call->out, &inst[i]);
}

/* CONFIG GET pattern: the control settings, plus the two Redis parameters
 * redis-benchmark reads before it starts.  The password is never shown. */
static void cmd_config(struct cmd_call *call)
{
    const struct request *r = call->req;
    if (strcasecmp(r->argv[1], "GET") != 0 || r->argc != 3) {
        reply_error(call->out, "ERR unknown subcommand or wrong number of arguments for "
                               "'CONFIG %.32s'; try CONFIG GET <parameter>", r->argv[1]);
        return;
    }
    const struct control_settings *s = control_settings_of(call->ctl);
    char num[8][24];
    const int64_t nums[] = {s->max_clients, s->tcp_port, s->max_request_bytes, s->max_args,
                            s->max_output_bytes, s->shutdown_deadline_ms, s->workers,
                            s->worker_queue};
    for (size_t i = 0; i < 8; i++)
        snprintf(num[i], sizeof num[i], "%lld", (long long)nums[i]);
    const char *params[][2] = {
        {"save", ""}, {"appendonly", "no"}, {"maxclients", num[0]}, {"unix", s->unix_path},
        {"tcp_port", num[1]}, {"tcp_bind", s->tcp_bind}, {"max_request_bytes", num[2]},
        {"max_args", num[3]}, {"max_output_bytes", num[4]}, {"shutdown_deadline_ms", num[5]},
        {"workers", num[6]}, {"worker_queue", num[7]}};
    size_t n = sizeof params / sizeof params[0], hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += fnmatch(r->argv[2], params[i][0], FNM_CASEFOLD) == 0;
    reply_array(call->out, (long long)(2 * hits));
    for (size_t i = 0; i < n; i++)
        if (fnmatch(r->argv[2], params[i][0], FNM_CASEFOLD) == 0) {
            reply_cstr(call->out, params[i][0]);
            reply_cstr(call->out, params[i][1]);
        }
}

/* Compare in time that depends only on the secret's length, not on where they differ. */
static int secret_equal(const char *given, size_t glen, const char *secret)
{
    size_t slen = strlen(secret);
    unsigned diff = glen != slen;
    for (size_t i = 0; i < slen; i++)
        diff |= (unsigned char)secret[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* AUTH password | AUTH default password */
static void cmd_auth(struct cmd_call *call)
{
    const struct request *r = call->req;
    const char *secret = control_settings_of(call->ctl)->password;
    if (!secret[0]) {
        reply_error(call->out, "ERR AUTH called without any password configured");
        return;
    }
    if (r->argc > 3) {
        reply_error(call->out, "ERR wrong number of arguments for 'auth' command");
        return;
    }
    int user_ok = r->argc == 2 || strcmp(r->argv[1], "default") == 0;
    int pass_ok = secret_equal(r->argv[r->argc - 1], r->lens[r->argc - 1], secret);
    call->sess->authed = user_ok && pass_ok;
    if (call->sess->authed)
        reply_status(call->out, "OK");
    else
        reply_error(call->out, "WRONGPASS invalid username-password pair");
}

static void cmd_shutdown(struct cmd_call *call)
{
    reply_status(call->out, "OK");
    control_request_shutdown(call->ctl);
}

/* DEBUG.SLEEP ms: holds a worker for ms (tests reply ordering across workers). */
static void cmd_debug_sleep(struct cmd_call *call)
{
    char *end;
    long ms = strtol(call->req->argv[1], &end, 10);
    if (*end || ms < 0 || ms > 60000) {
        reply_error(call->out, "ERR DEBUG.SLEEP wants milliseconds, 0..60000");
        return;
    }
    if (offload_wait(call->job->pool, ms) < 0)
        reply_error(call->out, "ERR interrupted by shutdown");
    else
        reply_status(call->out, "OK");
}

static const struct command table[] = {
    {"PING", cmd_ping, -1, 0, "PING [message]: PONG, or the message"},
    {"ECHO", cmd_echo, 2, 0, "ECHO message"},
    {"INFO", cmd_info, -1, 0, "INFO [section]: server and metrics, for people"},
    {"HEALTH", cmd_health, 1, 0, "HEALTH: ok/degraded/failed per component, with reasons"},
    {"METRICS", cmd_metrics, 1, 0, "METRICS: every metric in the Prometheus text format 0.0.4"},
    {"PLUGIN.LIST", cmd_plugin_list, 1, 0, "plugin instances: kind, name, version, ABI, file, state"},
    {"PLUGIN.RELOAD", cmd_plugin_reload, 2, CMD_WORKER, "PLUGIN.RELOAD kind/name: load its file again, move its instances onto it"},
    {"CONFIG.RELOAD", cmd_config_reload, 1, CMD_WORKER, "CONFIG.RELOAD: apply the config file's changes; what changed, or FILE:LINE"},
    {"CONFIG", cmd_config, -2, 0, "CONFIG GET pattern"},
    {"AUTH", cmd_auth, -2, CMD_NOAUTH, "AUTH [default] password"},
    {"QUIT", cmd_quit, -1, CMD_NOAUTH, "close the connection"},
    {"COMMAND", cmd_command, -1, 0, "(empty: for redis-cli)"},
    {"SHUTDOWN", cmd_shutdown, -1, 0, "stop the host cleanly"},
    {"GET", cmd_mem_get, 2, 0, "GET key: the value, or nil (MEM.GET)"},
    {"SET", cmd_mem_put, 3, 0, "SET key value: +OK once stored (MEM.PUT)"},
    {"DEL", cmd_mem_del, -2, 0, "DEL key [key ...]: how many existed (MEM.DEL)"},
    {"MEM.GET", cmd_mem_get, -2, 0, "MEM.GET key [WITHMETA]: value (and tier, version, importance, accesses)"},
    {"MEM.PUT", cmd_mem_put, -3, 0, "MEM.PUT key value [IMPORTANCE f] [TTL ms] [TIER t] [PIN]"},
    {"MEM.DEL", cmd_mem_del, -2, 0, "MEM.DEL key [key ...]: a tombstone; how many existed"},
    {"MEM.WHERE", cmd_mem_where, 2, CMD_WORKER, "MEM.WHERE key: the tiers holding a live copy, top first"},
    {"MEM.STATS", cmd_mem_stats, 1, 0, "MEM.STATS: tier slots, breakers, refusals"},
    {"PLUGIN.SWAP", cmd_plugin_swap, -3, CMD_WORKER, "PLUGIN.SWAP slot instance [MIGRATE]: rebind a tier slot"},
    {"MEM.MAINTAIN", cmd_mem_maintain, 1, CMD_WORKER, "MEM.MAINTAIN: run a maintenance cycle now"},
    {"ACTION.SUBMIT", cmd_action_submit, -3, 0, "ACTION.SUBMIT name payload [PRIORITY p] [TIMEOUT ms] [RETRIES n] [KEY k]: id"},
    {"ACTION.RESULT", cmd_action_result, -2, 0, "ACTION.RESULT id [WAIT ms]: status, output, reason (nil while pending)"},
    {"ACTION.DEAD", cmd_action_dead, -1, 0, "ACTION.DEAD [COUNT n]: dead letters, newest first, with reasons"},
    {"ACTION.REPLAY", cmd_action_replay, 2, 0, "ACTION.REPLAY id: run a dead letter again; the new id"},
    {"TASK.SUBMIT", cmd_task_submit, -3, 0, "TASK.SUBMIT type payload [PRIORITY p] [TIMEOUT ms] [RETRIES n]: id"},
    {"TASK.RESULT", cmd_task_result, -2, 0, "TASK.RESULT id [WAIT ms]: [status, data, reason], or nil"},
    {"TASK.STATUS", cmd_task_status, 2, 0, "TASK.STATUS id: queued, running, done or unknown"},
    {"TASK.CANCEL", cmd_task_cancel, 2, 0, "TASK.CANCEL id: 1 cancelled, 0 already finished"},
    {"DEBUG.SLEEP", cmd_debug_sleep, 2, CMD_WORKER | CMD_DEBUG, "DEBUG.SLEEP ms on a worker"},
    {"STATE.GET", cmd_state_get, -1, 0, "STATE.GET [key [WITHMETA]]: a value (nil), or every key and value"},
    {"STATE.SET", cmd_state_set, 3, 0, "STATE.SET key value: +OK once applied; -INVALID by a rule"},
    {"STATE.HISTORY", cmd_state_history, 2, 0, "STATE.HISTORY n: the last n updates [ms, key, value, source]"},
    {"STATE.WATCH", cmd_state_watch, 3, 0, "STATE.WATCH key|prefix* timeout_ms: [key, value] on a change, nil at timeout"},
    {"AGENT.STATE", cmd_agent_state, 1, 0, "AGENT.STATE: goal, step, last_outcome, outcome_source, updated_at_ms"},
    {"AGENT.SET", cmd_agent_set, 3, 0, "AGENT.SET goal|step|last_outcome value"},
    {"ORCH.PUBLISH", cmd_orch_publish, 4, 0, "ORCH.PUBLISH topic key payload: a message on the bus"},
};
static const size_t n_commands = sizeof table / sizeof table[0];

/* A command this connection may run (DEBUG.* only when enabled). */
static int command_visible(const struct command *c, const struct cmd_call *call)
{
    return !(c->flags & CMD_DEBUG) || control_settings_of(call->ctl)->debug_commands;
}

/* One command as Redis's COMMAND INFO shows it: name, arity, flags, no key positions. */
static void command_row(struct buf *out, const struct command *c)
{
    reply_array(out, 6);
    reply_cstr(out, c->name);
    reply_int(out, c->arity);
    reply_array(out, 0);
    reply_int(out, 0);
    reply_int(out, 0);
    reply_int(out, 0);
}

/* COMMAND: empty (enough for redis-cli's interactive start); COMMAND LIST: the names;
 * COMMAND INFO [name ...]: name and arity of those named, or of all. */
static void cmd_command(struct cmd_call *call)
{
    const struct request *r = call->req;
    int list = r->argc == 2 && !strcasecmp(r->argv[1], "LIST");
    int info = r->argc >= 2 && !strcasecmp(r->argv[1], "INFO");
    if (!list && !info) {
        reply_array(call->out, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_commands; i++)
        n += command_visible(&table[i], call);
    if (info && r->argc > 2) {
        reply_array(call->out, r->argc - 2);
        for (int a = 2; a < r->argc; a++) {
            const struct command *c = command_find(r->argv[a]);
            if (c && command_visible(c, call))
                command_row(call->out, c);
            else
                reply_nil(call->out);
        }
        return;
    }
    reply_array(call->out, (long long)n);
    for (size_t i = 0; i < n_commands; i++)
        if (command_visible(&table[i], call)) {
            if (list)
                reply_cstr(call->out, table[i].name);
            else
                command_row(call->out, &table[i]);
        }
}

const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < n_commands; i++)
        if (strcasecmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

int command_arity_ok(const struct command *cmd, int argc)
{
    return cmd->arity >= 0 ? argc == cmd->arity : argc >= -cmd->arity;
}
