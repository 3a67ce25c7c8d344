/* libFuzzer target for the shell executor's argv builder: the bytes are an action's
 * payload, parsed as shell_execute parses it and turned into argv by build_argv, for
 * three instances (a plain one, one with a fixed `program`, one with use_shell).
 * Nothing is ever spawned.  On GGL_OK the argv must be NULL-terminated within
 * MAX_ARGS, name an absolute program, and use /bin/sh -c only with use_shell; any
 * refusal must leave a reason.  The plugin's source is included for its static
 * build_argv, as tests/plugins/flaky.c does with tier/mem. */
#include "../plugins/executor/shell.c"

#include "testhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(struct shell *s, const json_t *doc)
{
    const char *argv[MAX_ARGS + 1];
    enum ggl_status st = build_argv(s, doc, argv);
    if (st != GGL_OK) {
        if (st != GGL_INVALID)
            abort(); /* bad input is INVALID, never another status */
        return;
    }
    size_t n = 0;
    while (n <= MAX_ARGS && argv[n])
        n++;
    if (n == 0 || n > MAX_ARGS || argv[0][0] != '/')
        abort();
    if (!s->use_shell && strcmp(argv[0], "/bin/sh") == 0 && n > 1 && strcmp(argv[1], "-c") == 0 &&
        json_is_string(doc))
        abort(); /* a shell only when configured */
    if (s->program && strcmp(argv[0], s->program) != 0)
        abort(); /* a fixed program takes arguments only */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct shell *plain, *fixed, *with_shell;
    if (!plain) {
        testhost_init(0);
        const char *fixed_conf[] = {"program", "/bin/echo", NULL};
        const char *shell_conf[] = {"use_shell", "true", NULL};
        plain = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
        fixed = testhost_open(&ggl_plugin_entry, fixed_conf, GGL_OK);
        with_shell = testhost_open(&ggl_plugin_entry, shell_conf, GGL_OK);
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!doc)
        return 0;
    check(plain, doc);
    check(fixed, doc);
    check(with_shell, doc);
    json_decref(doc);
    return 0;
}
