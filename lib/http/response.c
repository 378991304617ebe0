/* Every form of answer on a server connection: a fixed response, one
 * written piece by piece (length or chunks), errors as JSON, the head of a
 * stream that leaves the server (SSE, GRIP, WebSocket), and the framing of
 * such a stream's body. Header lines are checked here: nothing a caller
 * passes can split a head. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server-internal.h"
#include "net/stream.h"

int sp_http_add_header(struct evbuffer *lines, const char *name, const char *value,
                       size_t value_len)
{
    size_t name_len = strlen(name);

    if (!sp_http_token_valid((struct sp_slice){name, name_len}))
        return -1;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    struct evbuffer_iovec v[4] = {{(void *)name, name_len},
                                  {(void *)": ", 2},
                                  {(void *)value, value_len},
                                  {(void *)"\r\n", 2}};
    for (int i = 0; i < 4; i++) {
        if (evbuffer_add(lines, v[i].iov_base, v[i].iov_len) < 0)
            return -1;
    }
    return 0;
}

/* Every response begins with these two; formatted by hand because printf's
 * machinery was a visible share of a proxied request's CPU. */
static void add_status_line(struct evbuffer *o, int minor, int status, const char *reason)
{
    char line[13] = "HTTP/1.0 000 ";

    if (status < 100 || status > 999) {
        evbuffer_add_printf(o, "HTTP/1.%d %d %s\r\n", minor, status,
                            reason ? reason : sp_http_reason(status));
        return;
    }
    line[7] = (char)('0' + minor);
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    evbuffer_add(o, line, sizeof(line));
    reason = reason ? reason : sp_http_reason(status);
    evbuffer_add(o, reason, strlen(reason));
    evbuffer_add(o, "\r\n", 2);
}

static void add_content_length(struct evbuffer *o, uint64_t n)
{
    char digits[20];
    size_t at = sizeof(digits);

    do {
        digits[--at] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    evbuffer_add(o, "Content-Length: ", 16);
    evbuffer_add(o, digits + at, sizeof(digits) - at);
    evbuffer_add(o, "\r\n", 2);
}

static bool wants_keepalive(const struct sp_http_conn *c)
{
    /* Every Connection field counts, not only the first. */
    if (c->req.minor_version == 0)
        return sp_http_request_has_token(&c->req, "Connection", "keep-alive");
    return !sp_http_request_has_token(&c->req, "Connection", "close");
}

void sp_http_begin(struct sp_http_conn *c, int status, const char *reason,
                   struct evbuffer *header_lines, int64_t content_length)
{
    bool head_request = sp_slice_eq(c->req.method, "HEAD");

    if (c->response_begun || c->dead)
        return;
    struct evbuffer *o = http_conn_out(c);
    c->response_begun = true;
    if (c->server->limits.access_log)
        sp_log_info(c->server->log, "access", "%s \"%.*s %.*s\" %d", c->peer,
                    (int)c->req.method.len, c->req.method.ptr ? c->req.method.ptr : "",
                    (int)c->req.target.len, c->req.target.ptr ? c->req.target.ptr : "", status);
    c->response_no_body = head_request || status < 200 || status == 204 || status == 304;
    if (!wants_keepalive(c) || c->server->draining ||
        (c->retire_ms != UINT64_MAX && sp_now_ms() >= c->retire_ms))
        c->close_after = true;
    add_status_line(o, c->req.minor_version ? 1 : 0, status, reason);
    if (header_lines != NULL)
        evbuffer_add_buffer(o, header_lines);
    if (content_length >= 0) {
        if (status != 204 && status != 304 && status >= 200)
            add_content_length(o, (uint64_t)content_length);
    } else if (!c->response_no_body) {
        if (c->req.minor_version == 1) {
            c->response_chunked = true;
            evbuffer_add(o, "Transfer-Encoding: chunked\r\n", 28);
        } else {
            c->close_after = true; /* HTTP/1.0: the body ends with the connection */
        }
    }
    if (c->close_after)
        evbuffer_add(o, "Connection: close\r\n\r\n", 21);
    else if (c->req.minor_version == 0)
        evbuffer_add(o, "Connection: keep-alive\r\n\r\n", 26);
    else
        evbuffer_add(o, "\r\n", 2);
}

void sp_http_write(struct sp_http_conn *c, const void *data, size_t len)
{
    if (c->dead || c->response_no_body || len == 0)
        return;
    struct evbuffer *o = http_conn_out(c);
    if (c->response_chunked) {
        evbuffer_add_printf(o, "%zx\r\n", len);
        evbuffer_add(o, data, len);
        evbuffer_add(o, "\r\n", 2);
    } else {
        evbuffer_add(o, data, len);
    }
}

void sp_http_write_buffer(struct sp_http_conn *c, struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);

    if (c->dead || c->response_no_body || len == 0) {
        evbuffer_drain(buf, len);
        return;
    }
    if (c->response_chunked)
        evbuffer_add_printf(http_conn_out(c), "%zx\r\n", len);
    evbuffer_add_buffer(http_conn_out(c), buf);
    if (c->response_chunked)
        evbuffer_add(http_conn_out(c), "\r\n", 2);
}

void sp_http_finish(struct sp_http_conn *c)
{
    if (c->dead || c->response_done)
        return;
    if (c->response_chunked)
        evbuffer_add(http_conn_out(c), "0\r\n\r\n", 5);
    c->ops = NULL;
    http_response_complete(c);
}

void sp_http_abort(struct sp_http_conn *c)
{
    c->ops = NULL;
    http_conn_close(c);
}

static void respond(struct sp_http_conn *c, int status, const char *allow, const char *content_type,
                    const char *body, size_t len)
{
    struct evbuffer *headers = evbuffer_new();

    if (headers == NULL) {
        http_conn_close(c);
        return;
    }
    if (allow)
        evbuffer_add_printf(headers, "Allow: %s\r\n", allow);
    if (content_type)
        evbuffer_add_printf(headers, "Content-Type: %s\r\n", content_type);
    evbuffer_add(headers, "Cache-Control: no-store\r\n", 25);
    sp_http_begin(c, status, NULL, headers, (int64_t)len);
    evbuffer_free(headers);
    sp_http_write(c, body, len);
    sp_http_finish(c);
}

void sp_http_respond(struct sp_http_conn *c, int status, const char *content_type, const char *body,
                     size_t len)
{
    respond(c, status, NULL, content_type, body, len);
}

static void respond_error(struct sp_http_conn *c, int status, const char *allow,
                          const char *message)
{
    json_t *obj = json_pack("{s:s, s:i}", "error", message, "status", status);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;

    char *grown = text ? realloc(text, len + 2) : NULL;
    if (grown != NULL) {
        text = grown;
        text[len++] = '\n';
    }
    respond(c, status, allow, "application/json", text ? text : "", len);
    free(text);
    json_decref(obj);
}

void sp_http_respond_error(struct sp_http_conn *c, int status, const char *message)
{
    respond_error(c, status, NULL, message);
}

void sp_http_respond_not_allowed(struct sp_http_conn *c, const char *allow, const char *message)
{
    respond_error(c, 405, allow, message);
}

size_t sp_http_unsent(const struct sp_http_conn *c)
{
    return c->stream ? sp_stream_unsent(c->stream) : 0;
}

bool sp_http_response_started(const struct sp_http_conn *c)
{
    return c->response_begun;
}

const struct sp_http_request *sp_http_request(const struct sp_http_conn *c)
{
    return &c->req;
}

struct sp_stream *sp_http_begin_stream(struct sp_http_conn *c, int status, const char *reason,
                                       struct evbuffer *headers, bool upgrade, struct evbuffer *in,
                                       enum sp_http_stream *framing)
{
    int minor = c->req.minor_version; /* read before the connection is released */
    enum sp_http_stream how = upgrade      ? SP_HTTP_STREAM_UPGRADE
                              : minor == 1 ? SP_HTTP_STREAM_CHUNKED
                                           : SP_HTTP_STREAM_CLOSE;

    if (c->dead || c->response_begun || sp_http_has_body(c))
        return NULL;
    struct evbuffer *out = http_conn_out(c);
    if (out == NULL)
        return NULL;
    if (in != NULL && c->in != NULL)
        evbuffer_add_buffer(in, c->in);
    add_status_line(out, minor ? 1 : 0, status, reason);
    if (headers != NULL)
        evbuffer_add_buffer(out, headers);
    evbuffer_add_printf(out, "%s\r\n",
                        how == SP_HTTP_STREAM_CHUNKED ? "Transfer-Encoding: chunked\r\n"
                        : how == SP_HTTP_STREAM_CLOSE ? "Connection: close\r\n"
                                                      : "");
    *framing = how;
    return http_conn_release(c);
}

size_t sp_http_chunk_head(char buf[SP_HTTP_CHUNK_HEAD_MAX], size_t len)
{
    return (size_t)snprintf(buf, SP_HTTP_CHUNK_HEAD_MAX, "%zx\r\n", len);
}

int sp_http_stream_write(struct sp_stream *out, enum sp_http_stream framing, const void *data,
                         size_t len)
{
    char head[SP_HTTP_CHUNK_HEAD_MAX];

    if (framing != SP_HTTP_STREAM_CHUNKED)
        return sp_stream_write(out, data, len);
    if (len == 0)
        return 0;
    size_t n = sp_http_chunk_head(head, len);
    if (sp_stream_write(out, head, n) < 0 || sp_stream_write(out, data, len) < 0 ||
        sp_stream_write(out, SP_HTTP_CHUNK_TAIL, 2) < 0)
        return -1;
    return 0;
}

void sp_http_stream_end(struct sp_stream *out, enum sp_http_stream framing)
{
    if (framing == SP_HTTP_STREAM_CHUNKED)
        sp_stream_write(out, "0\r\n\r\n", 5);
    sp_stream_end(out);
}
