#include "http/target.h"

#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sp_http_target_clear(struct sp_http_target *t)
{
    free(t->base_path);
    free(t->host);
    *t = (struct sp_http_target){0};
}

/* "host" or "[v6]" of a URL into a name getaddrinfo takes. */
static int host_name(const char *host, char *name, size_t size)
{
    size_t hl = strlen(host);

    if (hl >= size)
        return -1;
    if (host[0] == '[' && hl > 2) {
        memcpy(name, host + 1, hl - 2);
        name[hl - 2] = '\0';
    } else {
        memcpy(name, host, hl + 1);
    }
    return 0;
}

static int resolve_http(const char *url, struct sp_http_target *t)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, name[256];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = -1;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || strcmp(scheme, "http") != 0 ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
        host_name(host, name, sizeof(name)) < 0)
        goto done;
    if (getaddrinfo(name, port, &hints, &ai) != 0 || ai == NULL ||
        ai->ai_addrlen > sizeof(t->address.addr))
        goto done;
    memcpy(&t->address.addr, ai->ai_addr, ai->ai_addrlen);
    t->address.len = ai->ai_addrlen;
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    t->base_path = strndup(path, plen);
    if (asprintf(&t->host, strcmp(port, "80") == 0 ? "%s" : "%s:%s", host, port) < 0)
        t->host = NULL;
    rc = t->base_path && t->host ? 0 : -1;
done:
    if (ai)
        freeaddrinfo(ai);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

int sp_http_target_resolve(const char *url, struct sp_http_target *t, char *err, size_t errlen)
{
    int rc;

    *t = (struct sp_http_target){0};
    if (strncmp(url, "unix:", 5) == 0) {
        t->unix_path = url + 5;
        t->base_path = strdup("");
        t->host = strdup("localhost");
        rc = t->base_path && t->host ? 0 : -1;
    } else {
        rc = resolve_http(url, t);
    }
    if (rc < 0) {
        sp_http_target_clear(t);
        snprintf(err, errlen, "backend.url '%s': its host does not resolve (or it is not http://)",
                 url);
    }
    return rc;
}
