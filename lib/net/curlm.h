/* libcurl's multi interface driven by a libevent loop (curl's multi-event.c
 * pattern): every request sidepush makes to the backend goes through one
 * sp_curlm per event loop, sharing its connection pool.
 */
#ifndef SP_NET_CURLM_H
#define SP_NET_CURLM_H

#include <curl/curl.h>
#include <event2/event.h>

struct sp_curlm;

/* Called once when a transfer ends (result CURLE_OK or an error), after the
 * handle has been removed from the multi; the callee owns easy again. */
typedef void (*sp_curlm_done)(CURL *easy, CURLcode result, void *ctx);

struct sp_curlm *sp_curlm_new(struct event_base *base);
/* Transfers still running are removed (their done callbacks do not run). */
void sp_curlm_free(struct sp_curlm *m);

/* Starts easy. Returns 0, or -1 if libcurl refused it. */
int sp_curlm_add(struct sp_curlm *m, CURL *easy, sp_curlm_done done, void *ctx);
/* Cancels easy without calling its done callback. */
void sp_curlm_remove(struct sp_curlm *m, CURL *easy);

#endif
