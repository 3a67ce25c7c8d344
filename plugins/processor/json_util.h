/* Payload helpers shared by the JSON processors (reasoning, planning, learning,
 * optimization): parse a task's payload under a size limit, read typed fields with a
 * reason on bad input, write a JSON result into a host->alloc buffer. */
#ifndef GGL_PROCESSOR_JSON_UTIL_H
#define GGL_PROCESSOR_JSON_UTIL_H

#include <jansson.h>
#include <ganglion/ganglion.h>

/* The two settings rows every JSON processor starts with. */
#define JSON_PROC_SETTINGS(type_)                                                    \
    GGL_SETTING("task_type", GGL_SETTING_STRING, (type_), "task type served"),       \
    GGL_SETTING("max_payload", GGL_SETTING_INT, "1048576", "largest payload accepted, bytes")

/* Leave a reason with the host and return GGL_INVALID. */
enum ggl_status json_invalid(const struct ggl_host *h, const char *fmt, ...) GGL_PRINTF(2, 3);

/* Parse text as one JSON object of at most max_len bytes (duplicate keys refused).  On failure *out is NULL and
 * the answer is GGL_INVALID with a reason naming `what` (e.g. "payload"). */
enum ggl_status json_parse_object(const struct ggl_host *h, const char *what, const void *text,
                                  size_t len, size_t max_len, json_t **out);

/* Serialise obj compactly into result->data (host->alloc); obj is released either way. */
enum ggl_status json_result(const struct ggl_host *h, json_t *obj, struct ggl_result *result);

/* Optional fields of an object.  Absent (or JSON null) leaves *out at its default and
 * answers GGL_OK; present with the wrong type or out of [min, max] answers GGL_INVALID
 * with a reason naming the field. */
enum ggl_status json_opt_int(const struct ggl_host *h, const json_t *obj, const char *key,
                             json_int_t min, json_int_t max, json_int_t *out);
enum ggl_status json_opt_number(const struct ggl_host *h, const json_t *obj, const char *key,
                                double min, double max, double *out);
enum ggl_status json_opt_bool(const struct ggl_host *h, const json_t *obj, const char *key, int *out);
enum ggl_status json_opt_string(const struct ggl_host *h, const json_t *obj, const char *key,
                                const char **out);
/* An array field; *out is NULL when absent.  More than max elements is GGL_INVALID. */
enum ggl_status json_opt_array(const struct ggl_host *h, const json_t *obj, const char *key,
                               size_t max, json_t **out);

/* Read memory key prefix+name as a JSON object.  GGL_NOTFOUND and GGL_UNAVAILABLE are
 * passed back untouched (callers decide what "no memory" means); a value that is not
 * a JSON object is GGL_INVALID with a reason. */
enum ggl_status json_mem_get(const struct ggl_host *h, const char *prefix, const char *name,
                             size_t max_len, json_t **out);

/* Names numbered in order of first sight (states, facts): index maps name -> number,
 * names maps number -> name (a JSON string).  Both start empty. */
struct json_names {
    json_t *index;
    json_t *names;
};
enum ggl_status json_names_init(struct json_names *n);
void json_names_free(struct json_names *n);
static inline size_t json_names_count(const struct json_names *n) { return json_array_size(n->names); }
/* The number of name s[0..len), numbering it when new; more than max names is
 * GGL_INVALID with a reason naming `what` ("states", "facts"). */
enum ggl_status json_names_intern(const struct ggl_host *h, struct json_names *n, const char *s,
                                  size_t len, size_t max, const char *what, size_t *out);

/* A growable array: `array` (capacity *cap elements of `size` bytes) with room for
 * `need` elements, grown by doubling.  NULL when that fails (array left as it was). */
void *json_reserve(void *array, size_t *cap, size_t need, size_t size);

/* The instance settings every processor shares: its task type and payload limit. */
struct json_proc_conf {
    const char *types[2]; /* { task_type, NULL } for task_types() */
    size_t max_payload;
};
void json_proc_conf_read(const struct ggl_host *h, const struct ggl_conf *conf,
                         struct json_proc_conf *pc);
/* A setting with a default the host already filled; `fallback` if it is missing. */
int64_t json_conf_int(const struct ggl_host *h, const struct ggl_conf *conf, const char *key,
                      int64_t fallback);

#endif
