/* ABI compatibility: a plugin built against the frozen 1.0 headers loads on this host,
 * and the host never reads past the size its structs declare — its vtable and
 * descriptor are copied to the very end of a page followed by a PROT_NONE page, so any
 * overread faults.  Other majors and newer minors are refused (test_loader covers the
 * built plugins; here the descriptor fields are varied on the guarded copy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <ganglion/ganglion.h>

#include "hostapi.h"
#include "loader.h"
#include "log.h"
#include "memory.h"

/* Copy n bytes into a fresh mapping so that they end exactly where a PROT_NONE page
 * begins.  (Never unmapped: a few pages for the life of the test.) */
static void *guarded_copy(const void *src, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(mprotect(p + page, page, PROT_NONE), 0);
    return memcpy(p + page - n, src, n);
}

static struct module *load_old(void)
{
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/tier/.libs/old_tier.so", TEST_PLUGINDIR);
    struct module *m = loader_load_file(path, GGL_KIND_TIER, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    return m;
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    static const char *const dirs[] = {TEST_PLUGINDIR, NULL};
    log_set_level(GGL_LOG_ERROR);
    return loader_init(dirs, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    loader_fini();
    return 0;
}

static void test_old_plugin_loads_and_declares_short_vtable(void **state)
{
    (void)state;
    struct module *m = load_old();
    assert_int_equal(*(const uint32_t *)m->desc->vtable, offsetof(struct ggl_tier, put_batch));
    assert_int_equal(m->desc->abi_major, 1);
    assert_int_equal(m->desc->min_host_minor, 0);
}

static void test_host_stays_inside_old_vtable(void **state)
{
    (void)state;
    struct module *m = load_old();
    uint32_t vsize = *(const uint32_t *)m->desc->vtable;
    /* The descriptor and the vtable, each ending at the PROT_NONE page. */
    const struct ggl_tier *vt = guarded_copy(m->desc->vtable, vsize);
    struct ggl_plugin d = *m->desc;
    d.vtable = vt;
    const struct ggl_plugin *gd = guarded_copy(&d, sizeof d);
    char why[256];
    assert_int_equal(loader_check(gd, GGL_KIND_TIER, why, sizeof why), 0);

    /* The memory manager drives it through a slot: get, put, del and a batch, for which
     * it must notice the slot is missing instead of reading past the vtable. */
    struct conf_error err;
    struct config *c = config_load_string("memory = { stm_ttl_ms = 60000; maintenance_interval_ms = 1000; };\n", "t.conf", &err);
    assert_non_null(c);
    assert_int_equal(memory_init(c, NULL, 0, &err), 0);
    struct ggl_host host;
    hostapi_init(&host, "tier/old_tier[guarded]");
    void *self;
    assert_int_equal(vt->open(&host, NULL, &self), GGL_OK);
    assert_int_equal(slot_bind(memory_slot(SLOT_LTM), vt, self, "tier/old_tier[guarded]"), 0);

    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_LTM;
    assert_int_equal(memory_put("k", 1, "v", 1, &w, NULL), GGL_OK);
    struct memory_value v;
    assert_int_equal(memory_get("k", 1, &v), GGL_OK);
    assert_int_equal(v.tier, SLOT_LTM);
    free(v.data);
    struct memory_item item = {"j", 1, "w", 1};
    enum ggl_status st;
    assert_int_equal(memory_put_batch(&item, 1, &w, &st), GGL_OK);
    assert_int_equal(st, GGL_OK);
    int existed;
    assert_int_equal(memory_del("j", 1, &existed), GGL_OK);
    assert_int_equal(existed, 1);
    memory_fini();
    vt->close(self);
    config_free(c);
}

static void test_other_major_and_newer_minor_refused(void **state)
{
    (void)state;
    struct module *m = load_old();
    struct ggl_plugin d = *m->desc;
    char why[256];
    d.abi_major = 2;
    assert_int_equal(loader_check(guarded_copy(&d, sizeof d), 0, why, sizeof why), -1);
    assert_string_equal(why, "built for ABI 2.x, host is 1.4");
    d.abi_major = 1;
    d.min_host_minor = GGL_ABI_MINOR + 1;
    assert_int_equal(loader_check(guarded_copy(&d, sizeof d), 0, why, sizeof why), -1);
    assert_non_null(strstr(why, "or newer, host is 1.4"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_old_plugin_loads_and_declares_short_vtable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_stays_inside_old_vtable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_major_and_newer_minor_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
