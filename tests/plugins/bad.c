/* A tier plugin built several times with -D switches, each copy broken in one way,
 * so the loader's refusals can be tested: BAD_NAME, BAD_MAJOR, BAD_MINOR, BAD_KIND,
 * BAD_VTABLE_SIZE, BAD_NO_DEL, BAD_OPEN_FAILS, BAD_EXTRA_SLOT (a newer plugin's
 * appended slot, which an older host must accept), BAD_OPEN_CRASHES, BAD_OPEN_HANGS
 * (for the probe). */
#include <stdlib.h>
#include <sys/mman.h>

#include <ganglion/ganglion.h>

#ifndef BAD_MAJOR
#define BAD_MAJOR GGL_ABI_MAJOR
#endif
#ifndef BAD_MINOR
#define BAD_MINOR 0
#endif
#ifndef BAD_KIND
#define BAD_KIND GGL_KIND_TIER
#endif

struct tier_plus {
    struct ggl_tier base;
    void (*appended)(void *self);
};

#ifdef BAD_EXTRA_SLOT
#define VTABLE_SIZE sizeof(struct tier_plus)
#elif defined(BAD_VTABLE_SIZE)
#define VTABLE_SIZE BAD_VTABLE_SIZE
#else
#define VTABLE_SIZE sizeof(struct ggl_tier)
#endif

static enum ggl_status t_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    (void)conf;
    (void)self;
#if defined(BAD_OPEN_CRASHES)
    (void)host; /* a real fault on a page nobody may read (no sanitizer stops it first) */
    volatile char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? GGL_ERROR : (enum ggl_status)page[0]; /* SIGSEGV */
#elif defined(BAD_OPEN_HANGS)
    (void)host;
    for (volatile unsigned spin = 1; spin; spin |= 1) /* never 0: forever */
        ;
    return GGL_ERROR;
#elif defined(BAD_OPEN_FAILS)
    host->set_reason(host, "deliberately failing open");
    return GGL_ERROR;
#else
    *self = (void *)host;
    return GGL_OK;
#endif
}

static void t_close(void *self) { (void)self; }

static enum ggl_status t_get(void *self, const void *k, size_t kl, struct ggl_entry *out)
{
    (void)self, (void)k, (void)kl, (void)out;
    return GGL_NOTFOUND;
}

static enum ggl_status t_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    (void)self, (void)e, (void)expect;
    return GGL_OK;
}

#ifndef BAD_NO_DEL
static enum ggl_status t_del(void *self, const void *k, size_t kl, uint64_t expect)
{
    (void)self, (void)k, (void)kl, (void)expect;
    return GGL_NOTFOUND;
}
#else
#define t_del NULL
#endif

static void t_appended(void *self) { (void)self; }

static const struct tier_plus vtable = {
    {.size = VTABLE_SIZE, .open = t_open, .close = t_close, .get = t_get, .put = t_put, .del = t_del},
    t_appended};

GGL_EXPORT const struct ggl_plugin ggl_plugin_entry = {
    sizeof(struct ggl_plugin), BAD_MAJOR, BAD_MINOR, BAD_KIND, BAD_NAME, "6.6.6",
    "a deliberately broken plugin for loader tests", NULL, &vtable};
