/* Tests that need a plugin file they may change (mode, owner, mtime) copy one. */
#ifndef GGL_TEST_COPYFILE_H
#define GGL_TEST_COPYFILE_H

/* Copy src to dst (created 0755 or truncated), asserting every step (cmocka). */
void copy_file(const char *src, const char *dst);

#endif
