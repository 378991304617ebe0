#include "backend/request.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

/* What libcurl is given for a backend behind a Unix socket: the request
 * goes to the socket, with this host. */
#define UNIX_ORIGIN "http://localhost"

char *sp_backend_url(const struct sp_backend *b, const struct sp_route_config *route,
                     const char *tmpl, const struct sp_slice caps[SP_TMPL_MAX_CAPTURES])
{
    char path[4096];

    if (sp_tmpl_expand(route->tmpl, tmpl, caps, path, sizeof(path)) < 0)
        return NULL;
    return sp_backend_url_of(b, path);
}

char *sp_backend_url_of(const struct sp_backend *b, const char *path)
{
    char *url = NULL;
    const char *base = b->config->backend.url;
    size_t blen = strlen(base);

    if (path[0] != '/')
        return strdup(path); /* an absolute URL */
    if (strncmp(base, "unix:", 5) == 0) {
        base = UNIX_ORIGIN; /* the socket is set on the handle (sp_backend_request) */
        blen = strlen(base);
    }
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    if (asprintf(&url, "%.*s%s", (int)blen, base, path) < 0)
        return NULL;
    return url;
}

CURL *sp_backend_request(const struct sp_backend *b, const char *url,
                         const struct curl_slist *headers)
{
    const struct sp_config *cfg = b->config;
    CURL *e = curl_easy_init();

    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    /* Never route backend traffic through an http_proxy from the environment. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->backend.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->backend.timeout_ms);
    if (strncmp(cfg->backend.url, "unix:", 5) == 0 &&
        strncmp(url, UNIX_ORIGIN "/", sizeof(UNIX_ORIGIN)) == 0)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, cfg->backend.url + 5);
    return e;
}

int sp_backend_add_header(struct curl_slist **list, const char *name, size_t len, const char *value)
{
    char *line = NULL;

    if (asprintf(&line, "%s: %.*s", name, (int)len, value) < 0)
        return -1;
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (l == NULL)
        return -1;
    *list = l;
    return 0;
}

int sp_backend_copy_header(struct curl_slist **list, const struct sp_http_request *req,
                           const char *name)
{
    struct evbuffer *joined = NULL;
    int rc = 0;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sp_http_header *h = &req->headers[i];
        if (!sp_slice_caseeq(h->name, name))
            continue;
        if (joined == NULL && (joined = evbuffer_new()) == NULL)
            return -1;
        if (evbuffer_get_length(joined) > 0)
            evbuffer_add(joined, strcasecmp(name, "Cookie") == 0 ? "; " : ", ", 2);
        evbuffer_add(joined, h->value.ptr, h->value.len);
    }
    if (joined != NULL) {
        size_t len = evbuffer_get_length(joined);
        const char *v = (const char *)evbuffer_pullup(joined, -1);
        rc = v == NULL && len > 0 ? -1 : sp_backend_add_header(list, name, len, v ? v : "");
        evbuffer_free(joined);
    }
    return rc;
}
