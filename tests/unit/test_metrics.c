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

/* What a renderer writes, as a string; *count gets what it returned. */
/* noinline: gcc 12 inlines it and then mistakes the memstream buffer for a dangling local */
__attribute__((noinline)) static char *capture(size_t (*fn)(FILE *, const char *), const char *section,
                                                size_t *count)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    *count = fn(f, section);
    fclose(f);
    return text;
}

static char *render(const char *section, size_t *lines) { return capture(metrics_render, section, lines); }

static size_t prometheus(FILE *f, const char *section)
{
    (void)section;
    return metrics_render_prometheus(f);
}

static char *render_prometheus(size_t *families) { return capture(prometheus, NULL, families); }

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

/* One HELP/TYPE per name even when instances of it were registered apart; counters end
 * in _total; label values escaped; names sanitised. */
static void test_prometheus_groups_and_escapes(void **state)
{
    (void)state;
    metrics_add(metrics_register(GGL_METRIC_COUNTER, "tier_hits", "hits", "tier/a[\"x\"]"), 2);
    metrics_set(metrics_register(GGL_METRIC_GAUGE, "depth.now", "line1\nline2", NULL), 7);
    metrics_add(metrics_register(GGL_METRIC_COUNTER, "tier_hits", "hits", "tier/b"), 3);
    metrics_add(metrics_register(GGL_METRIC_COUNTER, "done_total", "", NULL), 1);
    size_t families;
    char *text = render_prometheus(&families);
    assert_int_equal(families, 3);
    assert_string_equal(text,
                        "# HELP ganglion_depth_now line1\\nline2\n"
                        "# TYPE ganglion_depth_now gauge\n"
                        "ganglion_depth_now 7\n"
                        "# HELP ganglion_done_total done_total\n"
                        "# TYPE ganglion_done_total counter\n"
                        "ganglion_done_total 1\n"
                        "# HELP ganglion_tier_hits_total hits\n"
                        "# TYPE ganglion_tier_hits_total counter\n"
                        "ganglion_tier_hits_total{instance=\"tier/a[\\\"x\\\"]\"} 2\n"
                        "ganglion_tier_hits_total{instance=\"tier/b\"} 3\n");
    free(text);
    metrics_fini();
}

/* Buckets are cumulative, the last is +Inf and equals _count; _sum is the total. */
static void test_prometheus_histogram_buckets(void **state)
{
    (void)state;
    struct ggl_metric *h = metrics_register(GGL_METRIC_HISTOGRAM, "lat_seconds", "latency", NULL);
    metrics_observe(h, 0.00002); /* <= 5e-05 */
    metrics_observe(h, 0.00002);
    metrics_observe(h, 0.2);     /* <= 0.5 */
    metrics_observe(h, 5.0);     /* +Inf only */
    size_t families;
    char *text = render_prometheus(&families);
    assert_int_equal(families, 1);
    assert_non_null(strstr(text, "# TYPE ganglion_lat_seconds histogram\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"1e-05\"} 0\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"5e-05\"} 2\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"0.5\"} 3\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "ganglion_lat_seconds_bucket{le=\"+Inf\"} 4\n"));
    const char *sum = strstr(text, "ganglion_lat_seconds_sum ");
    assert_non_null(sum);
    double total = strtod(sum + strlen("ganglion_lat_seconds_sum "), NULL);
    assert_true(total > 5.20003 && total < 5.20005);
    assert_non_null(strstr(text, "ganglion_lat_seconds_count 4\n"));
    free(text);
    metrics_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_group_metrics),
        cmocka_unit_test(test_histogram_summary),
        cmocka_unit_test(test_prometheus_groups_and_escapes),
        cmocka_unit_test(test_prometheus_histogram_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
