/* Hot-swap of tier slots: memory_swap (memory.h), its migration's progress and pause
 * figures, and the swap state file that keeps PLUGIN.SWAP choices across reloads. */
#ifndef GGL_HOST_SWAP_H
#define GGL_HOST_SWAP_H

#include <pthread.h>
#include <stddef.h>

#include "config.h"
#include "instance.h"

/* The current or last migration as INFO lines; the length written. */
size_t swap_info(char *buf, size_t len);
/* Wait for a running migration to end (memory_fini). */
void swap_fini(void);
/* Bind tier slot `tier` to inst (open, a tier), migrating its entries when asked: what
 * memory_swap does after finding the instance by name.  Waits (bounded by wait_ms) for
 * a migration still running instead of refusing. */
enum ggl_status swap_to_instance(int tier, const struct instance *inst, int migrate_entries,
                                 int wait_ms);
/* Wait until no migration runs; 0, or -1 after timeout_ms. */
int swap_wait(int timeout_ms);

/* The `swap` config section. */
struct swap_conf {
    const char *state_file;
    int64_t drain_deadline_ms;
};
int swap_read_config(const struct config *c, struct swap_conf *sc, struct conf_error *err);
/* Read the state file (its path from sc, or beside the config file); the number of
 * records.  Until this runs, swap_state_record writes nothing (unit tests). */
int swap_state_load(const struct config *c, const struct swap_conf *sc);
/* Record that `tier` is bound to `bound` while the config names conf_name (NULL: none). */
int swap_state_record(int tier, const char *conf_name, const char *bound);
/* The instance `tier` should be bound to under config c: a record's when the config's
 * line still names what it did when the swap was made, else the config's (the record
 * is then dropped).  NULL: unbound. */
const char *swap_state_wanted(const struct config *c, int tier, char *buf, size_t len);
const char *swap_state_path(void);

#endif
