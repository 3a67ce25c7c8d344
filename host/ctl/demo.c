/* `ganglionctl demo`: a short deterministic agent loop driven over the control socket
 * of a host running conf/ganglion.conf (embedded defaults).  Sensors fill the
 * environment; memories of mixed importance move STM -> IM -> LTM as maintenance runs;
 * the planner plans and submits its steps as actions; the learner picks how to act;
 * executors act (one fails once and is retried); outcomes feed memory and the agent
 * state.  Ends with a summary a person reads at a glance; exit 0 when every step did
 * what it should. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "demo.h"

#define WAIT_MS "5000"

static redisContext *ctx;
static int problems;

static void problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("demo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    problems++;
}

/* A command; NULL (and a problem) on a connection error. */
static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    if (!r)
        problem("connection: %s", ctx->errstr);
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The integer a command answers (an id), or 0 with a problem. */
static long long cmd_id(const char *what, redisReply *r)
{
    long long id = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    if (!id)
        problem("%s: %s", what, r && r->str ? r->str : "no id");
    freeReplyObject(r);
    return id;
}

/* X.RESULT id WAIT: status into st, data into data (both truncated); 0 when ok. */
static int wait_result(const char *kind, long long id, char *data, size_t cap)
{
    redisReply *r = cmd("%s.RESULT %lld WAIT " WAIT_MS, kind, id);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
             r->element[0]->type == REDIS_REPLY_STRING;
    if (ok && data)
        snprintf(data, cap, "%.*s", (int)r->element[1]->len,
                 r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "");
    if (ok && strcmp(r->element[0]->str, "ok") != 0) {
        problem("%s %lld: %s %s", kind, id, r->element[0]->str,
                r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "");
        ok = 0;
    } else if (!ok) {
        problem("%s %lld: no result", kind, id);
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* A state key's value (text), or "" when absent. */
static void state_get(const char *key, char *out, size_t cap)
{
    redisReply *r = cmd("STATE.GET %s", key);
    snprintf(out, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Sum of INFO section lines starting with prefix ("engine_completed{" sums all types). */
static double info_sum(const char *section, const char *prefix)
{
    redisReply *r = cmd("INFO %s", section);
    double sum = 0;
    size_t pl = strlen(prefix);
    for (char *line = r && r->str ? r->str : NULL; line && *line;) {
        char *next = strchr(line, '\n');
        if (strncmp(line, prefix, pl) == 0) {
            char *colon = strchr(line, ':');
            if (colon && (!next || colon < next))
                sum += strtod(colon + 1, NULL);
        }
        line = next ? next + 1 : NULL;
    }
    freeReplyObject(r);
    return sum;
}

/* --- 1. sense -------------------------------------------------------------- */

static void sense(char *line, size_t cap)
{
    char load[32] = "", mem[32] = "", disk[32] = "";
    for (int i = 0; i < 50 && (!load[0] || !disk[0]); i++) { /* sensors sample every 1 s */
        state_get("proc.load1", load, sizeof load);
        state_get("disk.ltm.avail_bytes", disk, sizeof disk);
        if (!load[0] || !disk[0])
            sleep_ms(100);
    }
    state_get("proc.mem_used_ratio", mem, sizeof mem);
    if (!load[0] || !disk[0])
        problem("sensors did not report (proc.load1, disk.ltm.avail_bytes)");
    snprintf(line, cap, "load1 %s, memory used %.0f%%, LTM disk free %.1f GB", load,
             100 * strtod(mem, NULL), strtod(disk, NULL) / 1e9);
    freeReplyObject(cmd("AGENT.SET goal %s", "keep the host healthy"));
    freeReplyObject(cmd("AGENT.SET step %s", "sense"));
}

/* --- 2. remember ----------------------------------------------------------- */

struct memory_plan {
    const char *key, *text;
    const char *importance;
    int reads, pin;
};

static const struct memory_plan memories[] = {
    {"demo:goal", "the host must stay healthy", "0.9", 0, 0},
    {"demo:lesson", "careful fixes work more often", "0.9", 2, 0},
    {"demo:disk", "the LTM disk has room", "0.8", 0, 0},
    {"demo:load", "load was low this morning", "0.5", 0, 0},
    {"demo:plan", "sense, plan, act, report", "0.5", 1, 0},
    {"demo:habit", "notes go to the action log", "0.3", 4, 0},
    {"demo:noise1", "a passing reading", "0.1", 0, 0},
    {"demo:noise2", "another passing reading", "0.1", 0, 0},
    {"demo:noise3", "a third passing reading", "0.1", 0, 0},
    {"demo:rule", "never run a shell by default", "0.2", 0, 1},
};
#define N_MEMORIES (sizeof memories / sizeof memories[0])

static void remember(void)
{
    freeReplyObject(cmd("AGENT.SET step %s", "remember"));
    for (size_t i = 0; i < N_MEMORIES; i++) {
        const struct memory_plan *m = &memories[i];
        redisReply *r = m->pin ? cmd("MEM.PUT %s %s IMPORTANCE %s PIN", m->key, m->text, m->importance)
                               : cmd("MEM.PUT %s %s IMPORTANCE %s", m->key, m->text, m->importance);
        if (!r || r->type != REDIS_REPLY_STATUS)
            problem("MEM.PUT %s: %s", m->key, r && r->str ? r->str : "?");
        freeReplyObject(r);
        for (int k = 0; k < m->reads; k++)
            freeReplyObject(cmd("GET %s", m->key));
    }
}

/* Run maintenance once the entries are old enough to move (conf: stm_min_age_ms). */
static void maintain(int cycles)
{
    for (int c = 0; c < cycles; c++) {
        sleep_ms(2100);
        redisReply *r = cmd("MEM.MAINTAIN");
        if (!r || r->type == REDIS_REPLY_ERROR)
            problem("MEM.MAINTAIN: %s", r && r->str ? r->str : "?");
        freeReplyObject(r);
    }
}

/* Per tier, how many demo memories live there (below the cache: where they moved). */
static void placement(char *line, size_t cap)
{
    static const char *const tiers[] = {"cache", "stm", "im", "ltm"};
    int count[4] = {0};
    for (size_t i = 0; i < N_MEMORIES; i++) {
        redisReply *r = cmd("MEM.WHERE %s", memories[i].key);
        const char *lowest = NULL;
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++)
            lowest = r->element[k]->str;
        for (int t = 0; lowest && t < 4; t++)
            count[t] += strcmp(lowest, tiers[t]) == 0;
        if (!lowest)
            problem("%s is nowhere", memories[i].key);
        freeReplyObject(r);
    }
    snprintf(line, cap, "%zu memories: stm %d · im %d · ltm %d (importance, reads, pin decide)",
             N_MEMORIES, count[1], count[2], count[3]);
    if (!count[1] || !count[2] || !count[3])
        problem("memories did not spread over STM, IM and LTM");
}

/* --- 3. plan, learn, act ------------------------------------------------------ */

static const char plan_payload[] =
    "{\"start\":\"sensed\",\"goal\":\"reported\",\"submit\":true,"
    "\"edges\":["
    "{\"from\":\"sensed\",\"to\":\"checked\",\"cost\":1,\"action\":\"note\"},"
    "{\"from\":\"checked\",\"to\":\"fixed\",\"cost\":2,\"action\":\"note\"},"
    "{\"from\":\"sensed\",\"to\":\"fixed\",\"cost\":5,\"action\":\"note\"},"
    "{\"from\":\"fixed\",\"to\":\"reported\",\"cost\":1,\"action\":\"note\"}]}";

static void plan(char *line, size_t cap)
{
    freeReplyObject(cmd("AGENT.SET step %s", "plan"));
    char data[4096] = "";
    long long id = cmd_id("TASK.SUBMIT planning", cmd("TASK.SUBMIT planning %s", plan_payload));
    if (!id || wait_result("TASK", id, data, sizeof data) < 0)
        return;
    const char *cost = strstr(data, "\"cost\":");
    const char *sub = strstr(data, "\"submitted\":");
    int submitted = sub ? atoi(sub + 12) : 0;
    snprintf(line, cap, "sensed → checked → fixed → reported, cost %g (A* over 4 edges), "
             "%d steps submitted as actions", cost ? strtod(cost + 7, NULL) : -1, submitted);
    if (!strstr(data, "\"plan\":[\"sensed\",\"checked\",\"fixed\",\"reported\"]") || submitted != 3)
        problem("unexpected plan: %s", data);
}

/* The learner picks between two ways to fix; the demo's world rewards careful more. */
static void learn(char *line, size_t cap, char *chosen, size_t ccap)
{
    freeReplyObject(cmd("AGENT.SET step %s", "learn"));
    static const char *const arms[] = {"careful_fix", "quick_fix"};
    static const double reward[] = {0.9, 0.3};
    char data[2048] = "";
    int careful = 0;
    for (int pull = 0; pull < 12; pull++) {
        long long id = cmd_id("TASK.SUBMIT learning",
                              cmd("TASK.SUBMIT learning %s",
                                  "{\"op\":\"select\",\"bandit\":\"fix\",\"arms\":[\"careful_fix\","
                                  "\"quick_fix\"],\"algorithm\":\"ucb1\"}"));
        if (!id || wait_result("TASK", id, data, sizeof data) < 0)
            return;
        int k = strstr(data, "\"arm\":\"careful_fix\"") ? 0 : 1;
        careful += k == 0;
        char report[160];
        snprintf(report, sizeof report, "{\"op\":\"report\",\"bandit\":\"fix\",\"arm\":\"%s\",\"reward\":%g}",
                 arms[k], reward[k]);
        id = cmd_id("TASK.SUBMIT learning", cmd("TASK.SUBMIT learning %s", report));
        if (!id || wait_result("TASK", id, NULL, 0) < 0)
            return;
        snprintf(chosen, ccap, "%s", arms[k]);
    }
    snprintf(line, cap, "UCB1 over careful_fix / quick_fix: careful_fix in %d of 12 pulls; "
             "acting on %s", careful, chosen);
    if (careful < 7)
        problem("the learner did not prefer careful_fix (%d of 12)", careful);
}

/* The chosen fix runs as a shell action that fails once (exit 75: retried), then works.
 * Returns its id (0 on failure). */
static long long act(const char *chosen, char *line, size_t cap)
{
    freeReplyObject(cmd("AGENT.SET step %s", "act"));
    char payload[512];
    snprintf(payload, sizeof payload,
             "[\"/bin/sh\",\"-c\",\"if [ -e demo-%s.done ]; then echo %s worked; "
             "else touch demo-%s.done; echo busy >&2; exit 75; fi\"]",
             chosen, chosen, chosen);
    long long id = cmd_id("ACTION.SUBMIT shell", cmd("ACTION.SUBMIT shell %s RETRIES 2", payload));
    char out[256] = "";
    if (!id || wait_result("ACTION", id, out, sizeof out) < 0)
        return 0;
    out[strcspn(out, "\n")] = '\0';
    snprintf(line, cap, "shell %s: failed once (exit 75), retried with backoff, then \"%s\"",
             chosen, out);
    freeReplyObject(cmd("AGENT.SET step %s", "report"));
    return id;
}

/* --- 4. summary ---------------------------------------------------------------- */

/* The agent state's last outcome (AGENT.STATE), or "". */
static void last_outcome(char *out, size_t cap)
{
    redisReply *r = cmd("AGENT.STATE");
    out[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, "last_outcome") == 0)
            snprintf(out, cap, "%.160s", r->element[i + 1]->str ? r->element[i + 1]->str : "");
    freeReplyObject(r);
}

/* The action's outcome travels the orchestrator's bus to the agent state: wait for it
 * (bounded) instead of guessing how long that takes. */
static void wait_outcome(long long id)
{
    char want[32], got[256];
    snprintf(want, sizeof want, "{\"id\":%lld,", id);
    for (int i = 0; i < 100; i++) {
        last_outcome(got, sizeof got);
        if (strstr(got, want))
            return;
        sleep_ms(10);
    }
    problem("action %lld's outcome never reached the agent state", id);
}

static void summary_counts(char *tasks, char *actions, char *health, char *outcome, size_t cap)
{
    snprintf(tasks, cap, "%.0f ok, %.0f failed, %.0f invalid, %.0f timed out",
             info_sum("engine", "engine_completed{"), info_sum("engine", "engine_failed{"),
             info_sum("engine", "engine_invalid{"), info_sum("engine", "engine_timed_out{"));
    double retried = info_sum("actions", "actions_retried:");
    snprintf(actions, cap, "%.0f ok, %.0f failed, %.0f retried, %.0f dead letters; "
             "%.0f outcomes written to memory",
             info_sum("actions", "actions_completed:"), info_sum("actions", "actions_failed:"),
             retried, info_sum("actions", "actions_dead:"),
             info_sum("actions", "actions_feedback_memory:"));
    if (retried < 1)
        problem("no action was retried");
    redisReply *r = cmd("HEALTH");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements == 3)
        snprintf(health, cap, "%s (%s)", r->element[0]->element[1]->str,
                 r->element[0]->element[2]->str);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements == 3 &&
        strcmp(r->element[0]->element[1]->str, "ok") != 0)
        problem("health is %s", r->element[0]->element[1]->str);
    freeReplyObject(r);
    last_outcome(outcome, cap);
}

int demo_run(redisContext *c)
{
    ctx = c;
    char sensed[256] = "", placed[256] = "", planned[256] = "", learned[256] = "";
    char acted[256] = "", chosen[32] = "careful_fix";
    char tasks[256] = "", actions[256] = "", health[256] = "", outcome[256] = "";
    sense(sensed, sizeof sensed);
    remember();
    maintain(2); /* STM -> IM, then IM -> LTM */
    placement(placed, sizeof placed);
    plan(planned, sizeof planned);
    learn(learned, sizeof learned, chosen, sizeof chosen);
    long long acted_id = act(chosen, acted, sizeof acted);
    if (acted_id)
        wait_outcome(acted_id);
    summary_counts(tasks, actions, health, outcome, sizeof tasks);
    printf("ganglion demo (embedded defaults, no Redis)\n"
           "  sensors  %s\n  memory   %s\n  plan     %s\n  learner  %s\n  act      %s\n"
           "  tasks    %s\n  actions  %s\n  agent    goal \"keep the host healthy\", last outcome %s\n"
           "  health   %s\n  result   %s\n",
           sensed, placed, planned, learned, acted, tasks, actions, outcome, health,
           problems ? "PROBLEMS (see above)" : "every step did what it should");
    return problems ? 1 : 0;
}
