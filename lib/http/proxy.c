#include "http/proxy.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <stdarg.h>

#include "core/clock.h"
#include <stdio.h>
#include <stdlib.h>

/* Easy handles are reused: a fresh one costs its buffers and option state
 * on every request. */
#define EASY_POOL 64

struct sp_proxy {
    struct sp_proxy_stats stats;
    CURL *idle[EASY_POOL];
    size_t nidle;
    struct event_base *base;
    struct sp_curlm *curlm;
    struct sp_proxy_options opts;
    char *backend_url;
    const struct timeval *response_timeout;
    const struct sp_log *log;
};

/* One proxied exchange; lives from sp_proxy_handle() until the transfer ends
 * or the client goes away, whichever is first. */
struct xfer {
    struct sp_proxy *proxy;
    struct sp_http_conn *conn;
    CURL *easy;
    struct curl_slist *headers;
    struct event deadline; /* response head must arrive by then */
    struct evbuffer *head_lines;
    int status;
    char reason[64];
    int64_t content_length;
    bool chunked;                       /* the backend framed its body with chunks */
    const char *bad_response;           /* why the response could be read two ways: 502 */
    struct evbuffer *connection_tokens; /* the backend's Connection values, if it sent any */
    bool head_sent;
    bool timed_out;
    uint64_t started_ms;
    bool paused_send; /* curl waits for request body bytes */
    bool paused_recv; /* client too slow; curl holds the backend's bytes */
    /* GRIP: the backend asked to hold the client (see sp_grip_hold) */
    char *grip_hold;
    char *grip_channel;
    char *grip_keepalive;
    uint64_t grip_timeout_ms;
    struct evbuffer *grip_body;
    bool grip_too_big;
    char error[CURL_ERROR_SIZE];
};

#define GRIP_BODY_MAX (1024 * 1024)

static CURL *easy_get(struct sp_proxy *p)
{
    return p->nidle > 0 ? p->idle[--p->nidle] : curl_easy_init();
}

static void easy_put(struct sp_proxy *p, CURL *easy)
{
    if (p->nidle == EASY_POOL) {
        curl_easy_cleanup(easy);
        return;
    }
    curl_easy_reset(easy);
    p->idle[p->nidle++] = easy;
}

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    event_del(&x->deadline);
    if (x->easy)
        easy_put(x->proxy, x->easy);
    curl_slist_free_all(x->headers);
    if (x->head_lines)
        evbuffer_free(x->head_lines);
    if (x->connection_tokens)
        evbuffer_free(x->connection_tokens);
    if (x->grip_body)
        evbuffer_free(x->grip_body);
    free(x->grip_hold);
    free(x->grip_channel);
    free(x->grip_keepalive);
    free(x);
}

static bool holding(const struct xfer *x)
{
    return x->grip_hold != NULL && x->proxy->opts.grip != NULL && x->status >= 200;
}

static void update_pause(struct xfer *x)
{
    curl_easy_pause(x->easy,
                    (x->paused_send ? CURLPAUSE_SEND : 0) | (x->paused_recv ? CURLPAUSE_RECV : 0));
}

bool sp_proxy_is_hop_header(struct sp_slice name)
{
    static const char *const hop[] = {"Connection",
                                      "Keep-Alive",
                                      "Proxy-Connection",
                                      "TE",
                                      "Trailer",
                                      "Transfer-Encoding",
                                      "Upgrade",
                                      "Proxy-Authenticate",
                                      "Proxy-Authorization"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (sp_slice_caseeq(name, hop[i]))
            return true;
    }
    return false;
}

/* ---- client side callbacks ------------------------------------------------------- */

static void on_client_body(void *ctx)
{
    struct xfer *x = ctx;

    if (x->paused_send) {
        x->paused_send = false;
        update_pause(x);
    }
}

static void on_client_drain(void *ctx)
{
    struct xfer *x = ctx;

    if (x->paused_recv && sp_http_unsent(x->conn) < x->proxy->opts.buffer_size) {
        x->paused_recv = false;
        update_pause(x);
    }
}

static void on_client_closed(void *ctx)
{
    struct xfer *x = ctx;

    sp_curlm_remove(x->proxy->curlm, x->easy);
    xfer_free(x);
}

static const struct sp_http_ops client_ops = {on_client_body, on_client_drain, on_client_closed,
                                              NULL};

/* ---- backend side callbacks (libcurl) ---------------------------------------------- */

static size_t read_body(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    struct evbuffer *body = sp_http_body(x->conn);
    int n = body ? evbuffer_remove(body, buf, size * nitems) : 0;

    if (n > 0) {
        /* An upload in progress is not a silent backend: restart the clock. */
        event_add(&x->deadline, x->proxy->response_timeout);
        sp_http_body_taken(x->conn);
        return (size_t)n;
    }
    if (body == NULL || sp_http_body_complete(x->conn))
        return 0;
    x->paused_send = true;
    return CURL_READFUNC_PAUSE;
}

static void parse_status_line(struct xfer *x, const char *line, size_t len)
{
    /* "HTTP/1.1 200 OK" (curl also reports "HTTP/2 200") */
    const char *sp = memchr(line, ' ', len);
    x->status = 0;
    x->reason[0] = '\0';
    if (sp == NULL || (size_t)(sp - line) + 4 > len)
        return;
    x->status = atoi(sp + 1);
    const char *reason = sp + 4 < line + len && sp[4] == ' ' ? sp + 5 : line + len;
    size_t rlen = (size_t)(line + len - reason);
    if (rlen >= sizeof(x->reason))
        rlen = sizeof(x->reason) - 1;
    memcpy(x->reason, reason, rlen);
    x->reason[rlen] = '\0';
}

static void send_head(struct xfer *x)
{
    if (x->head_sent || holding(x))
        return;
    x->head_sent = true;
    event_del(&x->deadline);
    sp_http_begin(x->conn, x->status, x->reason[0] ? x->reason : NULL, x->head_lines,
                  x->content_length);
}

/* A response head that could be read two ways is never forwarded (RFC
 * 9112 section 6.3, 11.2): the transfer stops and the client gets 502.
 * Returns what makes libcurl stop. */
static size_t refuse(struct xfer *x, const char *why)
{
    if (x->bad_response == NULL)
        x->bad_response = why;
    return 0;
}

static int parse_length(struct sp_slice v, int64_t *out)
{
    uint64_t n;

    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t'))
        v.ptr++, v.len--;
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    if (sp_http_parse_content_length(v, &n) < 0 || n > INT64_MAX)
        return -1;
    *out = (int64_t)n;
    return 0;
}

/* Headers the backend names in its Connection header are hop-by-hop too
 * (RFC 9110 section 7.6.1): they are removed once the whole head is in. */
static void drop_connection_named(struct xfer *x)
{
    size_t tlen = x->connection_tokens ? evbuffer_get_length(x->connection_tokens) : 0;
    struct evbuffer *kept;
    char *line;
    size_t len;

    if (tlen == 0 || (kept = evbuffer_new()) == NULL)
        return;
    struct sp_slice tokens = {(const char *)evbuffer_pullup(x->connection_tokens, -1), tlen};
    while ((line = evbuffer_readln(x->head_lines, &len, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
        char *colon = memchr(line, ':', len);
        if (colon != NULL) {
            *colon = '\0';
            bool named = sp_http_list_has_token(tokens, line);
            *colon = ':';
            if (!named)
                evbuffer_add_printf(kept, "%.*s\r\n", (int)len, line);
        }
        free(line);
    }
    evbuffer_drain(x->head_lines, evbuffer_get_length(x->head_lines));
    evbuffer_add_buffer(x->head_lines, kept);
    evbuffer_free(kept);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nitems;
    size_t n = len;

    /* libcurl hands over one line up to its LF; only the line end's CR is
     * framing. */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (memchr(buf, '\r', n) != NULL || memchr(buf, '\0', n) != NULL)
        return refuse(x, "a bare CR or NUL in the response head");
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line: interim 1xx answers are discarded with theirs. */
        parse_status_line(x, buf, n);
        if (x->status == 101)
            return refuse(x, "101 Switching Protocols to a request that asked for no upgrade");
        evbuffer_drain(x->head_lines, evbuffer_get_length(x->head_lines));
        if (x->connection_tokens)
            evbuffer_drain(x->connection_tokens, evbuffer_get_length(x->connection_tokens));
        x->content_length = -1;
        x->chunked = false;
        free(x->grip_hold);
        x->grip_hold = NULL;
        return len;
    }
    if (n == 0) {
        if (x->status >= 200) {
            if (x->chunked && x->content_length >= 0)
                return refuse(x, "both Content-Length and Transfer-Encoding");
            drop_connection_named(x);
            send_head(x);
        }
        return len;
    }
    if (buf[0] == ' ' || buf[0] == '\t')
        return refuse(x, "an obs-folded header line");
    const char *colon = memchr(buf, ':', n);
    if (colon == NULL)
        return refuse(x, "a header line without a colon");
    struct sp_slice name = {buf, (size_t)(colon - buf)};
    if (!sp_http_token_valid(name))
        return refuse(x, "an invalid header name");
    if (sp_slice_caseeq(name, "Transfer-Encoding")) {
        x->chunked = true; /* libcurl decodes it; any coding makes the length unreadable */
        return len;
    }
    if (sp_slice_caseeq(name, "Connection")) {
        /* Most answers name nothing but keep-alive or close: a buffer only then. */
        if (x->connection_tokens == NULL && (x->connection_tokens = evbuffer_new()) == NULL)
            return refuse(x, "out of memory for its Connection header");
        evbuffer_add(x->connection_tokens, colon + 1, (size_t)(buf + n - colon - 1));
        evbuffer_add(x->connection_tokens, ",", 1);
        return len;
    }
    if (sp_proxy_is_hop_header(name))
        return len;
    if (name.len > 5 && strncasecmp(name.ptr, "Grip-", 5) == 0) {
        /* GRIP instructions are for sidepush, never for the client. */
        const char *v = colon + 1;
        while (v < buf + n && *v == ' ')
            v++;
        char *value = strndup(v, (size_t)(buf + n - v));
        char **slot = sp_slice_caseeq(name, "Grip-Hold")         ? &x->grip_hold
                      : sp_slice_caseeq(name, "Grip-Channel")    ? &x->grip_channel
                      : sp_slice_caseeq(name, "Grip-Keep-Alive") ? &x->grip_keepalive
                                                                 : NULL;
        if (sp_slice_caseeq(name, "Grip-Timeout") && value)
            x->grip_timeout_ms = (uint64_t)strtoul(value, NULL, 10) * 1000;
        if (slot != NULL && value != NULL && *slot == NULL) {
            *slot = value;
            value = NULL;
        } else if (slot != NULL && value != NULL) {
            /* Repeated Grip-Channel headers add channels. */
            char *joined = NULL;
            if (asprintf(&joined, "%s, %s", *slot, value) >= 0) {
                free(*slot);
                *slot = joined;
            }
        }
        free(value);
        return len;
    }
    if (sp_slice_caseeq(name, "Content-Length")) {
        /* nginx's rule: one Content-Length, one number. */
        if (x->content_length >= 0)
            return refuse(x, "more than one Content-Length");
        if (parse_length((struct sp_slice){colon + 1, (size_t)(buf + n - colon - 1)},
                         &x->content_length) < 0)
            return refuse(x, "an invalid Content-Length");
        return len;
    }
    evbuffer_add(x->head_lines, buf, n);
    evbuffer_add(x->head_lines, "\r\n", 2);
    return len;
}

static size_t on_data(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * nitems;

    if (holding(x)) {
        /* The body of a hold is what the client gets first (stream) or on
         * timeout (response): kept whole, bounded. */
        if (x->grip_body == NULL)
            x->grip_body = evbuffer_new();
        if (x->grip_body == NULL || evbuffer_get_length(x->grip_body) + len > GRIP_BODY_MAX) {
            x->grip_too_big = true;
            return 0;
        }
        evbuffer_add(x->grip_body, buf, len);
        return len;
    }
    send_head(x);
    if (sp_http_unsent(x->conn) >= x->proxy->opts.buffer_size) {
        x->paused_recv = true; /* curl keeps buf and offers it again on resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    sp_http_write(x->conn, buf, len);
    return len;
}

/* Grip-Channel "a; prev-id=1, b" -> "a,b" (parameters are not supported). */
static void grip_channels(const char *header, char *out, size_t size)
{
    size_t n = 0;
    char *copy = strdup(header);

    out[0] = '\0';
    for (char *save, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *semi = strchr(tok, ';');
        if (semi)
            *semi = '\0';
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            len--;
        if (len == 0 || n + len + 2 > size)
            continue;
        if (n > 0)
            out[n++] = ',';
        memcpy(out + n, tok, len);
        n += len;
        out[n] = '\0';
    }
    free(copy);
}

/* Grip-Keep-Alive "data; format=cstring; timeout=30": decodes data in place. */
static size_t grip_keepalive(char *header, uint64_t *timeout_ms)
{
    char *semi = strchr(header, ';');
    const char *params = semi ? semi + 1 : "";
    bool cstring = strstr(params, "format=cstring") != NULL;
    const char *t = strstr(params, "timeout=");
    size_t len, w = 0;

    *timeout_ms = (t ? (uint64_t)strtoul(t + 8, NULL, 10) : 55) * 1000;
    if (semi)
        *semi = '\0';
    len = strlen(header);
    while (len > 0 && header[len - 1] == ' ')
        len--;
    for (size_t r = 0; r < len; r++) {
        char c = header[r];
        if (cstring && c == '\\' && r + 1 < len) {
            char e = header[++r];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        }
        header[w++] = c;
    }
    return w;
}

static void hand_over(struct xfer *x)
{
    char channels[2048];
    struct sp_grip_hold hold = {
        .stream = strncasecmp(x->grip_hold, "stream", 6) == 0,
        .channels = channels,
        .status = x->status,
        .reason = x->reason[0] ? x->reason : NULL,
        .headers = x->head_lines,
        .body = x->grip_body,
        .timeout_ms = x->grip_timeout_ms ? x->grip_timeout_ms : 55000,
    };
    struct evbuffer *empty = NULL;

    grip_channels(x->grip_channel ? x->grip_channel : "", channels, sizeof(channels));
    if (x->grip_keepalive != NULL) {
        hold.keepalive_len = grip_keepalive(x->grip_keepalive, &hold.keepalive_ms);
        hold.keepalive = x->grip_keepalive;
    }
    if (hold.body == NULL)
        hold.body = empty = evbuffer_new();
    if (channels[0] == '\0' || hold.body == NULL)
        sp_http_respond_error(x->conn, 502, "backend sent Grip-Hold without a usable Grip-Channel");
    else
        x->proxy->opts.grip(x->proxy->opts.grip_ctx, x->conn, &hold);
    if (empty)
        evbuffer_free(empty);
}

static void count(struct xfer *x, int status)
{
    struct sp_proxy_stats *st = &x->proxy->stats;
    st->by_class[status >= 100 && status < 600 ? status / 100 : 0]++;
    sp_histogram_observe(&st->latency, (double)(sp_now_ms() - x->started_ms) / 1000.0);
}

const struct sp_proxy_stats *sp_proxy_stats(const struct sp_proxy *p)
{
    return &p->stats;
}

static void on_done(CURL *easy, CURLcode result, void *ctx)
{
    struct xfer *x = ctx;
    struct sp_http_conn *conn = x->conn;

    sp_http_set_ops(conn, NULL, NULL);
    count(x, result == CURLE_OK && x->bad_response == NULL ? x->status : x->timed_out ? 504 : 502);
    if (x->bad_response != NULL) {
        sp_log_warn(x->proxy->log, "backend_bad_response", "%s: %s", x->proxy->backend_url,
                    x->bad_response);
        if (x->head_sent)
            sp_http_abort(conn);
        else
            sp_http_respond_error(conn, 502, "backend sent an invalid or ambiguous response");
    } else if (result == CURLE_OK && holding(x)) {
        hand_over(x);
    } else if (holding(x) && x->grip_too_big) {
        sp_http_respond_error(conn, 502, "backend's Grip-Hold body is larger than 1 MiB");
    } else if (result == CURLE_OK && x->status >= 200) {
        send_head(x);
        sp_http_finish(conn);
    } else if (x->head_sent) {
        sp_http_abort(conn); /* a cut-off body must not look complete */
    } else if (x->timed_out) {
        sp_http_respond_error(conn, 504, "backend did not answer within backend.timeout");
    } else {
        sp_log_warn(x->proxy->log, "backend_error", "%s %s: %s", curl_easy_strerror(result),
                    x->proxy->backend_url, x->error[0] ? x->error : "");
        sp_http_respond_error(conn, 502,
                              result == CURLE_OK ? "backend sent no valid response"
                                                 : "backend unreachable or failed");
    }
    xfer_free(x);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct xfer *x = arg;
    struct sp_http_conn *conn = x->conn;

    x->timed_out = true;
    count(x, 504);
    sp_curlm_remove(x->proxy->curlm, x->easy);
    sp_http_set_ops(conn, NULL, NULL);
    sp_http_respond_error(conn, 504, "backend did not answer within backend.timeout");
    xfer_free(x);
}

/* ---- request building --------------------------------------------------------------- */

static int add_header(struct xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct xfer *x, const char *fmt, ...)
{
    char *line;
    va_list ap;

    va_start(ap, fmt);
    int rc = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -1;
    struct curl_slist *l = curl_slist_append(x->headers, line);
    free(line);
    if (l == NULL)
        return -1;
    x->headers = l;
    return 0;
}

static bool named_in_connection(const struct sp_http_request *req, struct sp_slice name)
{
    char *token = strndup(name.ptr, name.len);
    /* Out of memory: drop the header rather than forward what may be private. */
    bool named = token == NULL || sp_http_request_has_token(req, "Connection", token);

    free(token);
    return named;
}

static int build_headers(struct xfer *x, const struct sp_http_request *req)
{
    const struct sp_http_header *xff = NULL, *host = NULL;
    bool has_accept = false;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sp_http_header *h = &req->headers[i];
        if (sp_slice_caseeq(h->name, "X-Forwarded-For")) {
            xff = h;
            continue;
        }
        if (sp_slice_caseeq(h->name, "Host"))
            host = h;
        if (sp_proxy_is_hop_header(h->name) || named_in_connection(req, h->name) ||
            sp_slice_caseeq(h->name, "Content-Length") || sp_slice_caseeq(h->name, "Expect") ||
            sp_slice_caseeq(h->name, "X-Forwarded-Proto") ||
            sp_slice_caseeq(h->name, "X-Forwarded-Host") ||
            (sp_slice_caseeq(h->name, "Host") && !x->proxy->opts.preserve_host))
            continue;
        has_accept |= sp_slice_caseeq(h->name, "Accept");
        /* curl sends "Name;" as a header with an empty value. */
        int rc = h->value.len ? add_header(x, "%.*s: %.*s", (int)h->name.len, h->name.ptr,
                                           (int)h->value.len, h->value.ptr)
                              : add_header(x, "%.*s;", (int)h->name.len, h->name.ptr);
        if (rc < 0)
            return -1;
    }
    const char *peer = sp_http_peer(x->conn);
    if ((xff ? add_header(x, "X-Forwarded-For: %.*s, %s", (int)xff->value.len, xff->value.ptr, peer)
             : add_header(x, "X-Forwarded-For: %s", peer)) < 0 ||
        add_header(x, "X-Forwarded-Proto: http") < 0 ||
        (host &&
         add_header(x, "X-Forwarded-Host: %.*s", (int)host->value.len, host->value.ptr) < 0) ||
        (!has_accept && add_header(x, "Accept:") < 0) || add_header(x, "Expect:") < 0)
        return -1;
    return 0;
}

static int setup_easy(struct xfer *x, const struct sp_http_request *req)
{
    struct sp_proxy *p = x->proxy;
    char *url = NULL;
    char *method = strndup(req->method.ptr, req->method.len);
    CURL *e = x->easy;
    int rc = -1;

    if (method == NULL ||
        asprintf(&url, "%s%.*s", p->backend_url, (int)req->target.len, req->target.ptr) < 0) {
        url = NULL;
        goto done;
    }
    if (build_headers(x, req) < 0)
        goto done;
    curl_easy_setopt(e, CURLOPT_URL, url);
    /* The target goes to the backend exactly as sidepush routed it: libcurl
     * would otherwise resolve "/a/../secret" to "/secret". */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Never route backend traffic through an http_proxy from the environment. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* The backend's own redirects, cookies and encodings pass through as is. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    if (sp_slice_eq(req->method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (sp_http_body_kind(x->conn) != SP_HTTP_BODY_NONE ||
               sp_http_find_header(req, "Content-Length") != NULL) {
        bool chunked = sp_http_body_kind(x->conn) == SP_HTTP_BODY_CHUNKED;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
                         chunked ? (curl_off_t)-1 : (curl_off_t)sp_http_body_length(x->conn));
    }
    rc = 0;
done:
    free(url); /* curl copies CURLOPT_URL and CURLOPT_CUSTOMREQUEST */
    free(method);
    return rc;
}

void sp_proxy_handle(struct sp_proxy *p, struct sp_http_conn *conn,
                     const struct sp_http_request *req)
{
    struct xfer *x = calloc(1, sizeof(*x));

    if (x == NULL)
        goto fail;
    x->proxy = p;
    x->conn = conn;
    x->content_length = -1;
    x->started_ms = sp_now_ms();
    evtimer_assign(&x->deadline, p->base, on_deadline, x);
    x->easy = easy_get(p);
    x->head_lines = evbuffer_new();
    if (x->easy == NULL || x->head_lines == NULL || setup_easy(x, req) < 0)
        goto fail;
    if (sp_curlm_add(p->curlm, x->easy, on_done, x) < 0)
        goto fail;
    event_add(&x->deadline, p->response_timeout);
    sp_http_set_ops(conn, &client_ops, x);
    return;

fail:
    xfer_free(x);
    sp_http_respond_error(conn, 500, "out of memory");
}

struct sp_proxy *sp_proxy_new(struct event_base *base, struct sp_curlm *curlm,
                              const struct sp_proxy_options *opts, const struct sp_log *log)
{
    struct sp_proxy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->base = base;
    p->curlm = curlm;
    p->opts = *opts;
    p->log = log;
    /* The request target starts with '/', so the base loses its own. */
    size_t len = strlen(opts->backend_url);
    while (len > 0 && opts->backend_url[len - 1] == '/')
        len--;
    p->backend_url = strndup(opts->backend_url, len);
    struct timeval tv = sp_timeval_ms(opts->response_timeout_ms);
    p->response_timeout = event_base_init_common_timeout(base, &tv);
    if (p->backend_url == NULL || p->response_timeout == NULL) {
        sp_proxy_free(p);
        return NULL;
    }
    p->opts.backend_url = p->backend_url;
    return p;
}

int sp_proxy_reconfigure(struct sp_proxy *p, const struct sp_proxy_options *opts)
{
    size_t len = strlen(opts->backend_url);
    while (len > 0 && opts->backend_url[len - 1] == '/')
        len--;
    char *url = strndup(opts->backend_url, len);
    struct timeval tv = sp_timeval_ms(opts->response_timeout_ms);
    const struct timeval *timeout = event_base_init_common_timeout(p->base, &tv);

    if (url == NULL || timeout == NULL) {
        free(url);
        return -1;
    }
    /* Transfers in flight copied the URL into libcurl already. */
    free(p->backend_url);
    p->backend_url = url;
    p->opts = *opts;
    p->opts.backend_url = url;
    p->response_timeout = timeout;
    return 0;
}

void sp_proxy_free(struct sp_proxy *p)
{
    if (p == NULL)
        return;
    while (p->nidle > 0)
        curl_easy_cleanup(p->idle[--p->nidle]);
    free(p->backend_url);
    free(p);
}
