/* Tells when the contents of some files changed, on an event loop.
 *
 * Kubernetes swaps a ConfigMap's or Secret's files by renaming a "..data"
 * symlink in the mounted directory; the file's own inode never changes, so
 * inotify watches the directories, not the files. Events only wake the
 * watcher: after a short quiet spell it compares what the files hold now
 * with what they held, so an editor's swap file, a touch, or the kubelet's
 * periodic resync of an unchanged volume calls nobody.
 */
#ifndef SP_NET_FILEWATCH_H
#define SP_NET_FILEWATCH_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct sp_filewatch;

typedef void (*sp_filewatch_changed)(void *ctx);

#define SP_FILEWATCH_SEEN 65 /* a fingerprint of the files' contents, as text */

/* Watches paths[0 .. n) (each file's directory must exist; a file may be
 * missing and appear later). changed runs on base's loop settle_ms after
 * the last event of a burst, and only if some file's contents differ from
 * those seen before: at creation, or what seen says (a previous watcher's
 * sp_filewatch_seen, so that a change while the new watcher was being set
 * up, which inotify cannot report, is still noticed: then changed runs
 * settle_ms after creation). NULL on failure (no inotify, or a directory
 * cannot be watched). */
struct sp_filewatch *sp_filewatch_new(struct event_base *base, const char *const *paths, size_t n,
                                      const char *seen, uint64_t settle_ms,
                                      sp_filewatch_changed changed, void *ctx);
/* The fingerprint of what the last look saw. */
void sp_filewatch_seen(const struct sp_filewatch *w, char out[SP_FILEWATCH_SEEN]);
/* Accepts NULL. */
void sp_filewatch_free(struct sp_filewatch *w);

#endif
