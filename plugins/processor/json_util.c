/* Payload helpers shared by the JSON processors: bounded parsing, typed optional
 * fields with reasons, results in host-allocated buffers, memory values as JSON. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

enum ggl_status json_invalid(const struct ggl_host *h, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    h->set_reason(h, "%s", text);
    return GGL_INVALID;
}

enum ggl_status json_parse_object(const struct ggl_host *h, const char *what, const void *text,
                                  size_t len, size_t max_len, json_t **out)
{
    json_error_t err;
    *out = NULL;
    if (len > max_len)
        return json_invalid(h, "%s is %zu bytes, more than the limit of %zu", what, len, max_len);
    if (len == 0)
        return json_invalid(h, "%s is empty: expected a JSON object", what);
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!v)
        return json_invalid(h, "%s: bad JSON at line %d column %d: %s", what, err.line,
                            err.column, err.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return json_invalid(h, "%s: expected a JSON object", what);
    }
    *out = v;
    return GGL_OK;
}

enum ggl_status json_result(const struct ggl_host *h, json_t *obj, struct ggl_result *result)
{
    enum ggl_status st = GGL_NOMEM;
    size_t need = obj ? json_dumpb(obj, NULL, 0, JSON_COMPACT) : 0;
    char *buf = need ? h->alloc(need) : NULL;
    if (!buf)
        goto done;
    if (json_dumpb(obj, buf, need, JSON_COMPACT) != need) {
        h->free(buf);
        goto done;
    }
    result->data = buf;
    result->data_len = need;
    st = GGL_OK;
done:
    json_decref(obj);
    return st;
}

/* The field, or NULL when it is absent or null. */
static const json_t *field(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

enum ggl_status json_opt_int(const struct ggl_host *h, const json_t *obj, const char *key,
                             json_int_t min, json_int_t max, json_int_t *out)
{
    const json_t *v = field(obj, key);
    if (!v)
        return GGL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return json_invalid(h, "\"%s\" must be an integer in [%lld, %lld]", key,
                            (long long)min, (long long)max);
    *out = json_integer_value(v);
    return GGL_OK;
}

enum ggl_status json_opt_number(const struct ggl_host *h, const json_t *obj, const char *key,
                                double min, double max, double *out)
{
    const json_t *v = field(obj, key);
    if (!v)
        return GGL_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < min || d > max)
        return json_invalid(h, "\"%s\" must be a number in [%g, %g]", key, min, max);
    *out = d;
    return GGL_OK;
}

enum ggl_status json_opt_bool(const struct ggl_host *h, const json_t *obj, const char *key, int *out)
{
    const json_t *v = field(obj, key);
    if (!v)
        return GGL_OK;
    if (!json_is_boolean(v))
        return json_invalid(h, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return GGL_OK;
}

enum ggl_status json_opt_string(const struct ggl_host *h, const json_t *obj, const char *key,
                                const char **out)
{
    const json_t *v = field(obj, key);
    if (!v)
        return GGL_OK;
    if (!json_is_string(v))
        return json_invalid(h, "\"%s\" must be a string", key);
    *out = json_string_value(v);
    return GGL_OK;
}

enum ggl_status json_opt_array(const struct ggl_host *h, const json_t *obj, const char *key,
                               size_t max, json_t **out)
{
    json_t *v = (json_t *)field(obj, key);
    *out = NULL;
    if (!v)
        return GGL_OK;
    if (!json_is_array(v))
        return json_invalid(h, "\"%s\" must be an array", key);
    if (json_array_size(v) > max)
        return json_invalid(h, "\"%s\" has %zu elements, more than the limit of %zu", key,
                            json_array_size(v), max);
    *out = v;
    return GGL_OK;
}

enum ggl_status json_mem_get(const struct ggl_host *h, const char *prefix, const char *name,
                             size_t max_len, json_t **out)
{
    char key[512];
    void *value = NULL;
    size_t len = 0;
    *out = NULL;
    int n = snprintf(key, sizeof key, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= sizeof key)
        return json_invalid(h, "memory key \"%s%s\" is too long", prefix, name);
    if (!GGL_HAS_SLOT(h, struct ggl_host, mem_get))
        return GGL_UNAVAILABLE;
    enum ggl_status st = h->mem_get(h, key, (size_t)n, &value, &len);
    if (st != GGL_OK)
        return st;
    st = json_parse_object(h, "memory value", value, len, max_len, out);
    h->free(value);
    return st;
}

enum ggl_status json_names_init(struct json_names *n)
{
    n->index = json_object();
    n->names = json_array();
    return n->index && n->names ? GGL_OK : GGL_NOMEM;
}

void json_names_free(struct json_names *n)
{
    json_decref(n->index);
    json_decref(n->names);
    n->index = n->names = NULL;
}

enum ggl_status json_names_intern(const struct ggl_host *h, struct json_names *n, const char *s,
                                  size_t len, size_t max, const char *what, size_t *out)
{
    json_t *known = json_object_getn(n->index, s, len);
    if (known) {
        *out = (size_t)json_integer_value(known);
        return GGL_OK;
    }
    *out = json_array_size(n->names);
    if (*out >= max)
        return json_invalid(h, "more than %zu %s", max, what);
    if (json_object_setn_new(n->index, s, len, json_integer((json_int_t)*out)) ||
        json_array_append_new(n->names, json_stringn(s, len)))
        return GGL_NOMEM;
    return GGL_OK;
}

void *json_reserve(void *array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap && array)
        return array;
    size_t grown = *cap ? *cap : 16;
    while (grown < need && grown <= SIZE_MAX / 2)
        grown *= 2;
    if (grown < need || grown > SIZE_MAX / size)
        return NULL;
    void *p = realloc(array, grown * size);
    if (p)
        *cap = grown;
    return p;
}

int64_t json_conf_int(const struct ggl_host *h, const struct ggl_conf *conf, const char *key,
                      int64_t fallback)
{
    int64_t v;
    return h->conf_int(conf, key, &v) == GGL_OK ? v : fallback;
}

void json_proc_conf_read(const struct ggl_host *h, const struct ggl_conf *conf,
                         struct json_proc_conf *pc)
{
    int64_t max = json_conf_int(h, conf, "max_payload", 1048576);
    pc->types[0] = "processor";
    pc->types[1] = NULL;
    h->conf_string(conf, "task_type", &pc->types[0]);
    pc->max_payload = max > 0 ? (size_t)max : 0;
}
