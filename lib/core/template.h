/* Path templates: "/events/{channel}", "/orders/{id}/live", "/u/user-{id}".
 *
 * A {name} capture matches one or more bytes inside a single path segment
 * (never a '/'), up to the literal text that follows it. Templates are
 * compiled once at configuration time; matching allocates nothing.
 */
#ifndef SP_CORE_TEMPLATE_H
#define SP_CORE_TEMPLATE_H

#include "core/slice.h"

#define SP_TMPL_MAX_CAPTURES 8

struct sp_tmpl;

/* Compiles pattern. Returns 0 and *out (caller frees with sp_tmpl_free), or
 * -1 with a message in err: unbalanced braces, empty or invalid names,
 * two captures with nothing between them, too many captures. */
int sp_tmpl_compile(const char *pattern, struct sp_tmpl **out, char *err, size_t errlen);
void sp_tmpl_free(struct sp_tmpl *t);

size_t sp_tmpl_capture_count(const struct sp_tmpl *t);
/* Index of the capture called name, or -1. */
int sp_tmpl_capture_index(const struct sp_tmpl *t, const char *name, size_t len);

/* Matches the whole of path (no query string). On a match returns true and
 * fills caps[0 .. capture_count) with slices of path. */
bool sp_tmpl_match(const struct sp_tmpl *t, const char *path, size_t len,
                   struct sp_slice caps[SP_TMPL_MAX_CAPTURES]);

/* Checks that every {name} in text is a capture of t (for channel templates).
 * Returns 0 or -1 with a message in err. */
int sp_tmpl_check_refs(const struct sp_tmpl *t, const char *text, char *err, size_t errlen);

/* Writes text with each {name} replaced by its capture. Returns the length
 * written (excluding NUL), or -1 if out is too small. */
int sp_tmpl_expand(const struct sp_tmpl *t, const char *text,
                   const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], char *out, size_t size);

#endif
