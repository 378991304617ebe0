#include "backend/ws_forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages waiting for the backend per connection; past it the client is
 * closed with 1013 (try again later). */
#define QUEUE_MAX 32

struct item {
    struct item *next;
    bool text;
    size_t len;
    char data[];
};

struct sp_forward {
    const struct sp_backend *backend;
    sp_forward_reply reply;
    void *ws;
    char *url;
    /* The request headers, built once at the handshake: Cookie,
     * Authorization, the channels, the peer, and the Content-Type of a text
     * or of a binary message. */
    struct curl_slist *text_headers, *binary_headers;
    CURL *easy; /* in flight */
    struct item *current;
    struct item *head, *tail;
    size_t queued;
    char *answer;
    size_t answer_len;
    bool replying; /* inside reply: close must wait */
    bool closed;
};

static void next(struct sp_forward *f);

static char *forward_url(const struct sp_backend *b, const struct sp_route_config *route,
                         const struct sp_http_request *req)
{
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];

    if (route->subscribe.websocket.forward == NULL ||
        !sp_tmpl_match(route->tmpl, req->path.ptr, req->path.len, caps))
        return NULL;
    return sp_backend_url(b, route, route->subscribe.websocket.forward, caps);
}

static void end_transfer(struct sp_forward *f)
{
    if (f->easy != NULL) {
        sp_curlm_remove(f->backend->curlm, f->easy);
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
    }
    free(f->current);
    f->current = NULL;
    free(f->answer);
    f->answer = NULL;
    f->answer_len = 0;
}

static void forward_free(struct sp_forward *f)
{
    struct item *it;

    end_transfer(f);
    while ((it = f->head) != NULL) {
        f->head = it->next;
        free(it);
    }
    curl_slist_free_all(f->text_headers);
    curl_slist_free_all(f->binary_headers);
    free(f->url);
    free(f);
}

static size_t collect(char *buf, size_t size, size_t n, void *arg)
{
    struct sp_forward *f = arg;
    size_t len = size * n;

    if (f->answer_len + len > f->backend->config->channels.max_message_size)
        return 0; /* too large to relay: fails the transfer */
    char *grown = realloc(f->answer, f->answer_len + len + 1);
    if (grown == NULL)
        return 0;
    f->answer = grown;
    memcpy(f->answer + f->answer_len, buf, len);
    f->answer_len += len;
    return len;
}

static void on_done(CURL *easy, CURLcode result, void *ctx)
{
    struct sp_forward *f = ctx;
    long status = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    f->easy = NULL;
    bool ok = result == CURLE_OK && status >= 200 && status <= 299;
    f->replying = true;
    f->reply(f->ws, result != CURLE_OK ? 0 : status, ok ? f->answer : NULL, ok ? f->answer_len : 0);
    f->replying = false;
    end_transfer(f);
    if (f->closed) {
        forward_free(f);
        return;
    }
    next(f);
}

static void next(struct sp_forward *f)
{
    struct item *it = f->head;

    if (it == NULL || f->easy != NULL)
        return;
    f->head = it->next;
    if (f->head == NULL)
        f->tail = NULL;
    f->queued--;
    f->current = it;
    f->easy =
        sp_backend_request(f->backend, f->url, it->text ? f->text_headers : f->binary_headers);
    if (f->easy == NULL)
        goto fail;
    curl_easy_setopt(f->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, &it->data[0]);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
    if (sp_curlm_add(f->backend->curlm, f->easy, on_done, f) < 0) {
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
        goto fail;
    }
    return;
fail:
    /* Told like any failure; the next message tries again. */
    f->replying = true;
    f->reply(f->ws, 0, NULL, 0);
    f->replying = false;
    end_transfer(f);
    if (f->closed)
        forward_free(f);
}

static int headers_for(struct curl_slist **list, const char *type, const char *spec,
                       const struct sp_http_request *req, const char *peer)
{
    if (sp_backend_copy_header(list, req, "Cookie") < 0 ||
        sp_backend_copy_header(list, req, "Authorization") < 0 ||
        sp_backend_add_header(list, "Sidepush-Channel", strlen(spec), spec) < 0 ||
        sp_backend_add_header(list, "X-Forwarded-For", strlen(peer), peer) < 0 ||
        sp_backend_add_header(list, "Content-Type", strlen(type), type) < 0 ||
        sp_backend_add_header(list, "Expect", 0, "") < 0)
        return -1;
    return 0;
}

static struct sp_forward *forward_open(void *ctx, const struct sp_route_config *route,
                                       const char *spec, const struct sp_http_request *req,
                                       const char *peer, sp_forward_reply reply, void *ws)
{
    const struct sp_backend *b = ctx;
    struct sp_forward *f;

    if (route->subscribe.websocket.forward == NULL || (f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    *f = (struct sp_forward){.backend = b, .reply = reply, .ws = ws};
    f->url = forward_url(b, route, req);
    if (f->url == NULL ||
        headers_for(&f->text_headers, "text/plain; charset=utf-8", spec, req, peer) < 0 ||
        headers_for(&f->binary_headers, "application/octet-stream", spec, req, peer) < 0) {
        forward_free(f);
        return NULL;
    }
    return f;
}

static int forward_send(struct sp_forward *f, bool text, const void *data, size_t len)
{
    if (f->queued >= QUEUE_MAX)
        return -1;
    struct item *it = malloc(sizeof(*it) + len + 1);
    if (it == NULL)
        return 0; /* dropped, as the old queue did; the connection goes on */
    it->next = NULL;
    it->text = text;
    it->len = len;
    memcpy(it->data, data, len);
    it->data[len] = '\0';
    if (f->tail)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
    f->queued++;
    next(f);
    return 0;
}

static void forward_close(struct sp_forward *f)
{
    if (f == NULL)
        return;
    if (f->replying) {
        f->closed = true;
        return;
    }
    forward_free(f);
}

const struct sp_forwarder_ops sp_ws_forward_ops = {forward_open, forward_send, forward_close};
