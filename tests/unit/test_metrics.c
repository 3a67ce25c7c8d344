/* metrics.c: sections (explicit, from the name, "plugins" for labelled metrics), INFO
 * rendering per section, histogram summaries. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(const char *section, size_t *lines)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    *lines = metrics_render(f, section);
    fclose(f);
    return text;
}

static void test_sections_group_metrics(void **state)
{
    (void)state;
    metrics_add(metrics_register_in("control", GGL_METRIC_COUNTER, "conns", "", NULL), 3);
    metrics_set(metrics_register(GGL_METRIC_GAUGE, "memory_pending", "", NULL), 2);
    metrics_add(metrics_register(GGL_METRIC_COUNTER, "tier_hits", "", "tier/mem[stm]"), 5);
    metrics_add(metrics_register_in("control", GGL_METRIC_COUNTER, "conns", "", NULL), 1);
    size_t lines;
    char *all = render(NULL, &lines);
    assert_int_equal(lines, 3);
    assert_string_equal(all, "# Control\r\nconns:4\r\n\r\n# Memory\r\nmemory_pending:2\r\n"
                             "\r\n# Plugins\r\ntier_hits{tier/mem[stm]}:5\r\n");
    free(all);
    char *mem = render("MEMORY", &lines);
    assert_int_equal(lines, 1);
    assert_string_equal(mem, "# Memory\r\nmemory_pending:2\r\n");
    free(mem);
    char *none = render("nosuch", &lines);
    assert_int_equal(lines, 0);
    free(none);
    metrics_fini();
}

static void test_histogram_summary(void **state)
{
    (void)state;
    struct ggl_metric *h = metrics_register_in("x", GGL_METRIC_HISTOGRAM, "lat", "", NULL);
    for (int i = 0; i < 99; i++)
        metrics_observe(h, 0.00002);
    metrics_observe(h, 0.3);
    size_t lines;
    char *text = render("x", &lines);
    assert_non_null(strstr(text, "lat:count=100,avg="));
    assert_non_null(strstr(text, ",p50<=5e-05,p99<=5e-05\r\n"));
    free(text);
    metrics_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_group_metrics),
        cmocka_unit_test(test_histogram_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
