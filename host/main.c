/* ganglion: the host daemon.  Parses arguments, loads the config and plugins, runs
 * until SIGTERM/SIGINT, then closes plugin instances in reverse order and exits 0. */
#include "ggl-build.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actions.h"
#include "config.h"
#include "control.h"
#include "health.h"
#include "hostapi.h"
#include "environment.h"
#include "engine.h"
#include "engine_conf.h"
#include "hostapi.h"
#include "instance.h"
#include "loader.h"
#include "log.h"
#include "maintenance.h"
#include "memory.h"
#include "memory_async.h"
#include "metrics.h"
#include "resource.h"
#include "orchestrator.h"
#include "pool.h"
#include "probe.h"
#include "registry.h"
#include "reload.h"
#include "sizing.h"
#include "swap.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ganglion [-c FILE] [-t] [--describe KIND/NAME] [--print-topology] [-v] [-h]\n"
            "  -c, --config FILE      configuration file (default %s)\n"
            "  -t, --test             check the configuration and its plugins, then exit\n"
            "      --describe K/N     print plugin K/N's settings (e.g. tier/mem)\n"
            "      --print-topology   print the machine and every pool's size and why\n"
            "  -v, --version          print the version and ABI\n",
            GGL_DEFAULT_CONFIG);
}

/* Plugin directories: the config's, else the build tree when this binary runs from it,
 * else the installed $(pkglibdir). */
static const char *const *plugin_dirs(const struct config *c)
{
    static const char *build[] = {GGL_BUILD_PLUGINDIR, NULL};
    static const char *installed[] = {GGL_PLUGINDIR, NULL};
    if (c && c->plugin_dirs && c->plugin_dirs[0])
        return c->plugin_dirs;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        if (strcmp(exe, GGL_BUILD_HOSTDIR) == 0 || strcmp(exe, GGL_BUILD_HOSTDIR "/.libs") == 0)
            return build;
    }
    return installed;
}

static int describe(const char *spec)
{
    char kind_name[64], err[512];
    const char *slash = strchr(spec, '/');
    enum ggl_kind kind = 0;
    if (slash && (size_t)(slash - spec) < sizeof kind_name) {
        memcpy(kind_name, spec, (size_t)(slash - spec));
        kind_name[slash - spec] = '\0';
        for (uint32_t k = GGL_KIND_TIER; k <= GGL_KIND_SENSOR; k++)
            if (strcmp(kind_name, ggl_kind_str(k)) == 0)
                kind = (enum ggl_kind)k;
    }
    if (!kind) {
        fprintf(stderr, "ganglion: --describe wants KIND/NAME, KIND one of tier, processor, executor, sensor\n");
        return 2;
    }
    if (loader_init(plugin_dirs(NULL), err, sizeof err) < 0) {
        fprintf(stderr, "ganglion: %s\n", err);
        return 1;
    }
    struct module *m = loader_load(kind, slash + 1, err, sizeof err);
    int rc = 1;
    if (m) {
        static const char *const types[] = {"", "int", "float", "bool", "string"};
        const struct ggl_plugin *d = m->desc;
        printf("%s/%s %s (ABI %u.%u)\n  %s\n  file: %s\nsettings:\n", ggl_kind_str(d->kind),
               d->name, d->version, d->abi_major, d->min_host_minor,
               d->description ? d->description : "", m->path);
        printf("  %-20s %-7s %-12s %s\n", "plugin", "string", "(required)", "plugin name");
        printf("  %-20s %-7s %-12s %s\n", "required", "bool", "false",
               "refusal or open failure stops the host");
        if (d->kind == GGL_KIND_SENSOR)
            printf("  %-20s %-7s %-12s %s\n", "interval_ms", "int", "1000", "sampling interval");
        for (const struct ggl_setting *s = d->settings; s && s->name; s++)
            printf("  %-20s %-7s %-12s %s\n", s->name, types[s->type],
                   s->default_value ? s->default_value : "(none)",
                   s->description ? s->description : "");
        rc = 0;
    }
    loader_fini();
    return rc;
}

static int apply_log_level(const struct config *c)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; c->log_level && i < 4; i++)
        if (strcmp(c->log_level, levels[i]) == 0)
            log_set_level((enum ggl_log_level)i);
    return 0;
}

/* The memory manager, its workers (as many as the pools plan gives memory reads and
 * writes) and the maintenance thread. */
static int start_memory(const struct config *c, struct instance *inst, size_t n,
                        const struct sizing *s, struct conf_error *err)
{
    if (memory_init(c, inst, n, err) < 0)
        return -1;
    struct memory_async_conf mac = *memory_async_settings();
    mac.read_workers = s->pool[POOL_MEMORY_READ].size;
    mac.write_workers = s->pool[POOL_MEMORY_WRITE].size;
    if (memory_async_start(&mac) < 0 || maintenance_start() < 0) {
        snprintf(err->msg, sizeof err->msg, "cannot start the memory threads");
        return -1;
    }
    log_info("memory: %lld workers (memory_read %lld + memory_write %lld), keys partitioned",
             (long long)(mac.read_workers + mac.write_workers), (long long)mac.read_workers,
             (long long)mac.write_workers);
    return 0;
}

/* Health checks for every instance and tier slot, on their own thread; components
 * started later register theirs. */
static int start_health(const struct config *c, struct conf_error *err)
{
    struct health_settings hs;
    if (health_read_config(c, &hs, err) < 0)
        return -1;
    if (resource_init(c, err) < 0)
        return -1;
    health_register_builtin((uint64_t)hs.interval_ms);
    health_check_now(1); /* HEALTH answers with real states from the first request */
    if (health_start() < 0) {
        snprintf(err->msg, sizeof err->msg, "cannot start the health thread");
        return -1;
    }
    return 0;
}

/* The action system over every open executor instance, its workers sized by the pools
 * plan (action_execution, action_feedback) and its queue by the pools section. */
static int start_actions(const struct config *c, const struct instance *inst, size_t n,
                         const struct sizing *s, struct conf_error *err)
{
    struct actions_conf ac;
    struct queue_config qc;
    struct action_executor ex[64];
    size_t k = 0;
    if (actions_read_config(c, &ac, err) < 0)
        return -1;
    for (size_t i = 0; i < n && k < sizeof ex / sizeof ex[0]; i++)
        if (inst[i].conf->kind == GGL_KIND_EXECUTOR && inst[i].state == INSTANCE_OPEN)
            ex[k++] = (struct action_executor){inst[i].label, inst[i].mod->desc->vtable,
                                               inst[i].self};
    sizing_queue_config(s, "actions", &qc);
    if (actions_start(&ac, &qc, ex, k, s->pool[POOL_ACTION_EXECUTION].size,
                      s->pool[POOL_ACTION_FEEDBACK].size) < 0) {
        snprintf(err->msg, sizeof err->msg, "cannot start the action system");
        return -1;
    }
    return 0;
}

/* The instance registry over what instances_open opened, and the swap state file's
 * recorded bindings applied over the config's (swap_state.c says the rule). */
static int start_registry(struct config *c, struct instance *inst, size_t n,
                          struct conf_error *err)
{
    struct swap_conf sc;
    if (swap_read_config(c, &sc, err) < 0 || registry_init(inst, n, c, sc.drain_deadline_ms) < 0)
        return -1;
    if (swap_state_load(c, &sc) <= 0)
        return 0;
    for (int t = 0; t < SLOT_COUNT; t++) {
        char buf[128];
        const char *want = swap_state_wanted(c, t, buf, sizeof buf);
        const struct instance *target = want ? registry_find(GGL_KIND_TIER, want) : NULL;
        if (target && target->state == INSTANCE_OPEN && (!c->slots[t] || strcmp(want, c->slots[t])) &&
            swap_to_instance(t, target, 0, 0) != GGL_OK)
            log_warn("swap: slot %s stays on the config's choice: %s", tier_slot_names[t],
                     hostapi_take_reason());
    }
    return 0;
}

/* SIGHUP: the same reload as CONFIG.RELOAD, its outcome in the log. */
static void reload_on_signal(void)
{
    struct reload_report *rep = malloc(sizeof *rep);
    if (!rep)
        return;
    if (reload_config(rep) < 0)
        log_error("SIGHUP: reload refused: %s", rep->error);
    else
        log_info("SIGHUP: reload applied (%d change lines)", rep->n);
    free(rep);
}

/* The processing engine over the open processor instances, sized by the pools plan.
 * procs must outlive it. */
static struct engine *start_engine(const struct config *c, struct instance *inst, size_t n,
                                   const struct sizing *s, struct engine_processor **procs,
                                   uint64_t *drain_ms, struct conf_error *err)
{
    struct engine_config ec;
    if (engine_read_config(c, s, &ec, drain_ms, err) < 0)
        return NULL;
    size_t np = 0;
    *procs = calloc(n ? n : 1, sizeof **procs);
    for (size_t i = 0; *procs && i < n; i++)
        if (inst[i].conf->kind == GGL_KIND_PROCESSOR && inst[i].state == INSTANCE_OPEN)
            (*procs)[np++] = (struct engine_processor){inst[i].label, inst[i].mod->desc->vtable,
                                                       inst[i].self};
    struct engine *e = *procs ? engine_new(&ec, *procs, np) : NULL;
    if (!e) {
        snprintf(err->msg, sizeof err->msg, "cannot start the processing engine");
        return NULL;
    }
    engine_set_global(e);
    log_info("engine: %zu processors, workers %u..%u", np, ec.min_workers, ec.max_workers);
    return e;
}

/* Wait for SIGTERM or SIGINT (blocked in every thread, taken here with sigwait). */
static void run_until_signal(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("signal %d: shutting down", sig);
            return;
        }
        if (sig == SIGHUP)
            reload_on_signal();
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"test", no_argument, NULL, 't'},
                                         {"describe", required_argument, NULL, 'D'},
                                         {"print-topology", no_argument, NULL, 'P'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = GGL_DEFAULT_CONFIG;
    int test_only = 0, print_topology = 0, path_given = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; path_given = 1; break;
        case 't': test_only = 1; break;
        case 'D': return describe(optarg);
        case 'P': print_topology = 1; break;
        case 'v':
            printf("ganglion %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, GGL_ABI_MAJOR, GGL_ABI_MINOR);
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    /* Signals are taken by sigwait in main; every thread started later inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct conf_error cerr;
    char err[512];
    if (print_topology) { /* the config's pools section applies; no file: defaults */
        int use_file = path_given || access(path, R_OK) == 0;
        struct config *pc = use_file ? config_load(path, &cerr) : NULL;
        int bad = (use_file && !pc) || sizing_report(stdout, pc, &cerr) < 0;
        if (bad)
            fprintf(stderr, "%s\n", cerr.msg);
        config_free(pc);
        return bad;
    }
    struct config *c = config_load(path, &cerr);
    if (!c) {
        fprintf(stderr, "%s\n", cerr.msg);
        return 1;
    }
    apply_log_level(c);
    struct probe_settings probe;
    if (probe_read_config(c, &probe, &cerr) < 0) {
        fprintf(stderr, "%s\n", cerr.msg);
        config_free(c);
        return 1;
    }
    if (probe.enabled)
        probe_enable(&probe, NULL);
    if (loader_init(plugin_dirs(c), err, sizeof err) < 0) {
        fprintf(stderr, "ganglion: %s\n", err);
        config_free(c);
        return 1;
    }

    int rc = 0, stuck = 0;
    if (test_only) {
        struct control_settings cs;
        struct pools_conf pools;
        struct actions_conf ac;
        struct health_settings hs;
        struct swap_conf sc;
        rc = sizing_read(c, &pools, &cerr) < 0 || memory_check_config(c, &cerr) < 0 ||
             health_read_config(c, &hs, &cerr) < 0 || resource_check_config(c, &cerr) < 0 ||
             actions_read_config(c, &ac, &cerr) < 0 ||
             instances_check(c, &cerr) < 0 || control_check(c, &cs, &cerr) < 0 ||
             environment_check_config(c, &cerr) < 0 || swap_read_config(c, &sc, &cerr) < 0 ||
             engine_read_config(c, NULL, &(struct engine_config){0}, NULL, &cerr) < 0;
        if (rc)
            fprintf(stderr, "%s\n", cerr.msg);
        else
            printf("%s: configuration OK (%zu instances)\n", path, c->n_instances);
    } else {
        struct instance *inst = NULL;
        size_t n = 0;
        struct control *ctl = NULL;
        struct engine *eng = NULL;
        struct engine_processor *procs = NULL;
        uint64_t drain_ms = 0;
        struct topology topo;
        struct sizing sizes;
        /* Start order: pool sizes, plugins, memory, its workers and maintenance, then the
         * socket that uses them; stop in reverse. */
        if (sizing_plan(c, &topo, &sizes, &cerr) < 0 || instances_open(c, &inst, &n, &cerr) < 0 ||
            start_memory(c, inst, n, &sizes, &cerr) < 0 || start_registry(c, inst, n, &cerr) < 0 ||
            start_health(c, &cerr) < 0 ||
            environment_start(c, inst, n, &cerr) < 0 || resource_attach() < 0 ||
            orchestrator_start(&cerr) < 0 || start_actions(c, inst, n, &sizes, &cerr) < 0 ||
            !(eng = start_engine(c, inst, n, &sizes, &procs, &drain_ms, &cerr)) ||
            !(ctl = control_start(c, inst, n, &cerr))) {
            log_error("%s", cerr.msg);
            rc = 1;
        } else {
            health_register_components();
            log_info("ganglion %s running (pid %d)", PACKAGE_VERSION, (int)getpid());
            run_until_signal(&set);
            health_stop(); /* its checks read the components stopped below */
            environment_release_watches(); /* parked STATE.WATCH replies go out now */
            engine_stop(eng, clock_now_ms() + drain_ms); /* queued tasks (they may act), WAITs */
            actions_stop(); /* before memory: feedback may still write to it */
            memory_async_stop(); /* finish queued memory work: its replies still go out */
            control_stop(ctl);
        }
        health_stop();
        resource_fini();
        engine_stop(eng, clock_now_ms()); /* a no-op when stopped above */
        engine_set_global(NULL);
        engine_free(eng);
        actions_stop();
        /* A thread abandoned inside a plugin may still read its state, the engine's
         * table of it, its config strings and its code: all stay for the process exit. */
        stuck = pool_wait_abandoned(0) > 0;
        if (!stuck)
            free(procs); /* only engine workers read it */
        stuck |= actions_leaked();
        actions_free(); /* before the environment: feedback calls state_set */
        orchestrator_stop();
        environment_stop(); /* sensors stop, queued updates apply, final snapshot */
        memory_async_free();
        maintenance_stop();
        memory_fini();
        if (stuck)
            log_warn("plugins left open and loaded: a worker abandoned inside one still runs");
        else if (registry_active())
            registry_fini(); /* closes every instance, those of the start too */
        else
            instances_close(inst, n);
    }
    if (!stuck) {
        loader_fini();
        config_free(c);
    }
    metrics_fini();
    if (!test_only && rc == 0)
        log_info("ganglion stopped");
    return rc;
}
