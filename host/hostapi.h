/* The services table (struct ggl_host) the host gives each plugin instance, the host
 * clock, per-call error reasons and the plugin-side view of an instance's config. */
#ifndef GGL_HOST_HOSTAPI_H
#define GGL_HOST_HOSTAPI_H

#include <time.h>
#include <libconfig.h>
#include <ganglion/ganglion.h>

/* An instance's config block as plugins see it: the block plus declared defaults. */
struct ggl_conf {
    const config_setting_t *block;
    const struct ggl_setting *settings;
};

typedef uint64_t (*clock_fn)(void);

/* The host clock in ms since the epoch: CLOCK_REALTIME_COARSE, a few ns instead of ~20
 * for a resolution of one scheduler tick (1-4 ms), which TTLs, expiry and backoff in ms
 * can afford; inline, as every tier call reads it.  clock_set(fn) puts a fake clock in
 * its place (tests), clock_set(NULL) restores the real one. */
extern clock_fn clock_override;
static inline uint64_t clock_now_ms(void)
{
    if (__builtin_expect(clock_override != NULL, 0))
        return clock_override();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
void clock_set(clock_fn fn);

/* Fill `h` for an instance whose log lines start with `label` (kept by pointer). */
/* How to find the pending-callback count of the instance owning services table h (the
 * registry's; NULL: none counted). */
void hostapi_set_pending_of(_Atomic long *(*fn)(const struct ggl_host *h));
void hostapi_init(struct ggl_host *h, const char *label);

/* The reason a plugin left on this thread with set_reason, then cleared ("" if none). */
const char *hostapi_take_reason(void);
void hostapi_clear_reason(void);
/* This thread's reason, left in place for the caller (a breaker notes it, the client
 * still gets it). */
const char *hostapi_peek_reason(void);
/* Set this thread's reason from host code (a refused call's explanation). */
void hostapi_set_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
