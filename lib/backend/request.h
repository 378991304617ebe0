/* Requests sidepush makes to the backend on its own account (polls,
 * forward-auth, WebSocket message forwarding), through libcurl's multi
 * interface on the event loop. Not the reverse proxy (http/proxy.c). */
#ifndef SP_BACKEND_REQUEST_H
#define SP_BACKEND_REQUEST_H

#include <curl/curl.h>

#include "config/config.h"
#include "core/log.h"
#include "net/curlm.h"

struct sp_push;

/* What the backend modules share. The app owns it and points config at the
 * configuration in force (a reload swaps it). */
struct sp_backend {
    struct event_base *base;
    struct sp_curlm *curlm;
    const struct sp_log *log;
    const struct sp_config *config;
    struct sp_push *push; /* where polls publish and subscribers are handed */
};

/* The backend URL for a route's path template (poll.url, authorize.url,
 * websocket.forward) with its captures filled in: backend.url plus the path
 * (http://localhost plus the path when backend.url is unix:/socket), or the
 * template itself when it is an absolute URL. malloc'd; NULL if too long or
 * out of memory. */
char *sp_backend_url(const struct sp_backend *b, const struct sp_route_config *route,
                     const char *tmpl, const struct sp_slice caps[SP_TMPL_MAX_CAPTURES]);

/* The same for a plain backend path or absolute URL (webhooks.url). */
char *sp_backend_url_of(const struct sp_backend *b, const char *path);

/* An easy handle for url with the settings every such request shares: the
 * backend's connect and total timeouts, no proxy from the environment, no
 * signals, the path sent as written, and backend.url's Unix socket for a
 * URL sp_backend_url made on it. headers are not copied: they must outlive
 * the transfer. NULL on allocation failure. */
CURL *sp_backend_request(const struct sp_backend *b, const char *url,
                         const struct curl_slist *headers);

/* Appends "name: value" (len bytes of value). Returns 0 or -1. */
int sp_backend_add_header(struct curl_slist **list, const char *name, size_t len,
                          const char *value);

/* Appends the client's header name (every field of that name, joined into
 * one with ", ", or "; " for Cookie, as RFC 9110 and 6265 allow), if it
 * sent one. Returns 0 or -1. */
struct sp_http_request;
int sp_backend_copy_header(struct curl_slist **list, const struct sp_http_request *req,
                           const char *name);

#endif
