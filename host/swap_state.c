/* The swap state file and the `swap` config section.  Each PLUGIN.SWAP records
 * "slot config_instance bound_instance": what the config's tiers line said when the
 * swap was made, and what the slot is bound to since.  At start and at reload a record
 * keeps its binding while the config still names config_instance for that slot; once
 * the config's line for the slot changes, the config wins and the record is dropped. */
#include "ggl-build.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "swap.h"

struct record {
    int set;
    char conf_name[128], bound[128];
};

static struct {
    char path[4096];
    struct record rec[SLOT_COUNT];
    pthread_mutex_t lock;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const struct conf_key swap_keys[] = {
    {"state_file", GGL_SETTING_STRING, offsetof(struct swap_conf, state_file), "", 0, 0,
     "where PLUGIN.SWAP records slot bindings (default: beside the config file)"},
    {"drain_deadline_ms", GGL_SETTING_INT, offsetof(struct swap_conf, drain_deadline_ms), "5000",
     10, 3600000, "a retired instance still in use after this is kept as a zombie"},
};

int swap_read_config(const struct config *c, struct swap_conf *sc, struct conf_error *err)
{
    const config_setting_t *sec = config_lookup(&c->cfg, "swap");
    return config_read_section(c, sec, swap_keys, sizeof swap_keys / sizeof swap_keys[0], sc, err);
}

/* The configured path, or ganglion-swap.state in the config file's directory. */
static void state_path(const struct config *c, const struct swap_conf *sc)
{
    if (sc->state_file && sc->state_file[0]) {
        snprintf(S.path, sizeof S.path, "%s", sc->state_file);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->path);
    snprintf(S.path, sizeof S.path, "%s/ganglion-swap.state", dirname(dir));
}

int swap_state_load(const struct config *c, const struct swap_conf *sc)
{
    pthread_mutex_lock(&S.lock);
    state_path(c, sc);
    memset(S.rec, 0, sizeof S.rec);
    FILE *f = fopen(S.path, "r");
    int n = 0;
    char slot[16], conf_name[128], bound[128];
    while (f && fscanf(f, "%15s %127s %127s", slot, conf_name, bound) == 3) {
        for (int t = 0; t < SLOT_COUNT; t++)
            if (strcmp(slot, tier_slot_names[t]) == 0) {
                S.rec[t].set = 1;
                snprintf(S.rec[t].conf_name, sizeof S.rec[t].conf_name, "%s", conf_name);
                snprintf(S.rec[t].bound, sizeof S.rec[t].bound, "%s", bound);
                n++;
            }
    }
    if (f)
        fclose(f);
    pthread_mutex_unlock(&S.lock);
    if (n)
        log_info("swap: %d slot binding(s) recorded in %s", n, S.path);
    return n;
}

/* Write the records: a temp file, fsync, rename over the old one, fsync the directory,
 * so a crash leaves either the old or the new state.  (S.lock held.) */
static int save(void)
{
    if (!S.path[0])
        return 0;
    char tmp[sizeof S.path + 8], dir[sizeof S.path];
    snprintf(tmp, sizeof tmp, "%s.tmp", S.path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto fail;
    for (int t = 0; t < SLOT_COUNT; t++)
        if (S.rec[t].set)
            fprintf(f, "%s %s %s\n", tier_slot_names[t], S.rec[t].conf_name, S.rec[t].bound);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, S.path) != 0)
        goto fail;
    snprintf(dir, sizeof dir, "%s", S.path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
fail:
    log_error("swap: cannot write %s: %s", S.path, strerror(errno));
    unlink(tmp);
    return -1;
}

int swap_state_record(int tier, const char *conf_name, const char *bound)
{
    pthread_mutex_lock(&S.lock);
    struct record *r = &S.rec[tier];
    r->set = 1;
    snprintf(r->conf_name, sizeof r->conf_name, "%s", conf_name ? conf_name : "-");
    snprintf(r->bound, sizeof r->bound, "%s", bound);
    int rc = save();
    pthread_mutex_unlock(&S.lock);
    return rc;
}

const char *swap_state_wanted(const struct config *c, int tier, char *buf, size_t len)
{
    const char *conf_name = c->slots[tier];
    pthread_mutex_lock(&S.lock);
    struct record *r = &S.rec[tier];
    const char *want = conf_name;
    if (r->set) {
        if (strcmp(r->conf_name, conf_name ? conf_name : "-") == 0 &&
            config_instance(c, GGL_KIND_TIER, r->bound)) {
            snprintf(buf, len, "%s", r->bound);
            want = buf;
        } else { /* the config's line changed (or the instance is gone): it wins */
            log_info("swap: slot %s: the config now says %s; recorded swap to %s dropped",
                     tier_slot_names[tier], conf_name ? conf_name : "(unbound)", r->bound);
            r->set = 0;
            save();
        }
    }
    pthread_mutex_unlock(&S.lock);
    return want;
}

const char *swap_state_path(void) { return S.path; }
