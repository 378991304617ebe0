#include "config/config.h"

#include <stdlib.h>
#include <unistd.h>

#include "../tap.h"

static const char *fake_env(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "TOKEN") == 0)
        return "s3cret";
    if (strcmp(name, "PORT") == 0)
        return "9090";
    return NULL;
}

/* Parses text; returns the config (or NULL) and leaves diagnostics in d. */
static struct sp_config *parse(const char *text, struct sp_diags *d)
{
    struct sp_config *c = NULL;
    sp_diags_clear(d);
    sp_config_parse("t.yaml", text, strlen(text), fake_env, NULL, &c, d);
    for (size_t i = 0; i < d->count; i++)
        printf("# %s\n", d->lines[i]);
    return c;
}

static bool has_diag(const struct sp_diags *d, const char *want)
{
    for (size_t i = 0; i < d->count; i++) {
        if (strstr(d->lines[i], want) != NULL)
            return true;
    }
    return false;
}

static void test_minimal_and_defaults(void)
{
    struct sp_diags d = {0};
    struct sp_config *c = parse("backend: { url: http://127.0.0.1:3000 }\n", &d);

    ok(c != NULL && d.count == 0, "a minimal file is one line");
    if (c == NULL)
        return;
    is_str(c->backend.url, "http://127.0.0.1:3000", "backend.url");
    is_int(c->backend.connect_timeout_ms, 2000, "backend.connect_timeout default 2s");
    is_int(c->backend.timeout_ms, 30000, "backend.timeout default 30s");
    ok(c->backend.preserve_host, "backend.preserve_host default true");
    is_int(c->channels.history, 100, "channels.history default");
    is_int(c->channels.history_ttl_ms, 300000, "channels.history_ttl default 5m");
    is_int(c->channels.max_message_size, 65536, "channels.max_message_size default 64KiB");
    is_int(c->limits.max_header_size, 16384, "limits.max_header_size default");
    is_int(c->limits.max_connections, 10000, "limits.max_connections default");
    is_str(c->health.liveness_path, "/healthz", "liveness path default");
    is_str(c->health.readiness_path, "/readyz", "readiness path default");
    ok(c->publish_auth.bearer_token == NULL, "no bearer token by default");
    char buf[64];
    sp_address_format(&c->listen, buf, sizeof(buf));
    is_str(buf, "0.0.0.0:8080", "listen default");
    sp_address_format(&c->publish_listen, buf, sizeof(buf));
    is_str(buf, "127.0.0.1:8081", "publish_listen default is loopback");
    sp_config_release(c);
    sp_diags_clear(&d);
}

static void test_full(void)
{
    struct sp_diags d = {0};
    struct sp_config *c =
        parse("listen: 127.0.0.1:${PORT}\n"
              "publish_listen: '[::1]:8081'\n"
              "backend:\n"
              "  url: http://app.internal:3000/base/\n"
              "  connect_timeout: 500ms\n"
              "  timeout: 1m30s\n"
              "  preserve_host: false\n"
              "publish:\n"
              "  auth: { bearer_token: \"${TOKEN}\", hmac_secret: whsec_dGVzdA== }\n"
              "channels: { history: 5, history_ttl: 1h, max_message_size: 1MiB }\n"
              "limits: { max_body_size: 0, idle_timeout: 5s }\n"
              "log: { level: debug }\n"
              "routes:\n"
              "  - path: /events/{channel}\n"
              "    subscribe: { transports: [sse, longpoll], channel: 'c-{channel}' }\n"
              "  - path: /orders/{id}/live\n"
              "    poll: { url: '/api/orders/{id}', interval: 2s, event: order }\n",
              &d);
    ok(c != NULL, "a full file loads");
    if (c == NULL)
        return;
    char buf[64];
    sp_address_format(&c->listen, buf, sizeof(buf));
    is_str(buf, "127.0.0.1:9090", "${PORT} expanded inside a value");
    is_str(c->publish_auth.bearer_token, "s3cret", "${TOKEN} expanded");
    is_int(c->backend.timeout_ms, 90000, "compound duration");
    ok(!c->backend.preserve_host, "bool false");
    is_int(c->channels.max_message_size, 1048576, "size with unit");
    is_int(c->limits.max_body_size, 0, "zero size");
    is_int(c->log.level, SP_LOG_DEBUG, "log level");
    is_int(c->nroutes, 2, "two routes");
    ok(c->routes[0].has_subscribe && !c->routes[0].has_poll, "first is a subscribe route");
    is_int(c->routes[0].subscribe.transports, SP_TRANSPORT_SSE | SP_TRANSPORT_LONGPOLL,
           "transports list");
    is_str(c->routes[0].subscribe.channel, "c-{channel}", "channel template");
    ok(c->routes[1].has_poll, "second is a poll route");
    is_int(c->routes[1].poll.interval_ms, 2000, "poll interval");
    is_str(c->routes[1].poll.event, "order", "poll event");
    sp_config_release(c);
    sp_diags_clear(&d);
}

struct error_case {
    const char *text;
    const char *diag; /* expected substring, including FILE:LINE:COL */
};

static void test_errors(void)
{
    static const struct error_case cases[] = {
        {"", "t.yaml:1:1: configuration is empty"},
        {"- a\n", "t.yaml:1:1: configuration must be a mapping"},
        {"backend: {url: http://x}\nlisen: :80\n",
         "t.yaml:2:1: unknown key 'lisen' (did you mean 'listen'?)"},
        {"backend: {url: http://x, speed: 3}\n", "t.yaml:1:26: unknown key 'speed' in backend"},
        {"listen: :80\n", "t.yaml:1:1: missing required key 'backend'"},
        {"backend: {timeout: 1s}\n", "t.yaml:1:10: missing required key 'backend.url'"},
        {"backend: {url: ftp://x}\n", "t.yaml:1:16: URL 'ftp://x' must start with http://"},
        {"backend: {url: 'http://x?q=1'}\n", "must not have a query"},
        {"backend: {url: http://x, timeout: 30}\n", "t.yaml:1:35: duration '30' needs a unit"},
        {"backend: {url: http://x, timeout: soon}\n", "invalid duration 'soon'"},
        {"backend: {url: http://x, preserve_host: yes}\n", "must be true or false, not 'yes'"},
        {"backend: {url: http://x}\nchannels: {max_message_size: 1MB2}\n",
         "t.yaml:2:30: unknown size unit in '1MB2'"},
        {"backend: {url: http://x}\nchannels: {history: many}\n", "must be a whole number"},
        {"backend: {url: http://x}\nchannels: {history: 2000000}\n", "is out of range"},
        {"backend: {url: http://x}\nlisten: 1.2.3.4\n", "t.yaml:2:9: invalid address"},
        {"backend: {url: http://x}\nlisten: 1.2.3.4:99999\n", "invalid port"},
        {"backend: {url: http://x}\nlisten: [1, 2]\n",
         "'listen' must be a single value, not a list"},
        {"backend: [1]\n", "'backend' must be a mapping"},
        {"backend: {url: http://x}\nlog: {level: loud}\n", "unknown log level 'loud'"},
        {"backend: {url: \"${NOPE}\"}\n", "t.yaml:1:16: environment variable 'NOPE' is not set"},
        {"backend: {url: \"${1X}\"}\n", "invalid environment variable name"},
        {"backend: {url: \"${X\"}\n", "unterminated '${'"},
        {"backend: {url: http://x}\nbackend: {url: http://y}\n",
         "t.yaml:2:1: duplicate key 'backend'"},
        {"backend: {url: http://x\n", "YAML syntax error"},
        {"a: &x 1\nb: *x\n", "aliases"},
        {"backend: {url: http://x}\nroutes: {path: /x}\n", "'routes' must be a list"},
        {"backend: {url: http://x}\nroutes:\n  - path: /x\n",
         "t.yaml:3:5: a route needs 'subscribe' or 'poll'"},
        {"backend: {url: http://x}\nroutes:\n  - subscribe: {}\n", "missing required key 'path'"},
        {"backend: {url: http://x}\nroutes:\n  - path: x\n    subscribe: {}\n",
         "must start with '/'"},
        {"backend: {url: http://x}\nroutes:\n  - path: /a/{b\n    subscribe: {}\n",
         "unterminated '{'"},
        {"backend: {url: http://x}\nroutes:\n  - path: /a/{b}\n    subscribe: {}\n",
         "'{channel}' is not a capture"},
        {"backend: {url: http://x}\nroutes:\n  - path: /a/{channel}\n    subscribe: {transports: "
         "[sse, smoke]}\n",
         "t.yaml:4:35: unknown transport 'smoke'"},
        {"backend: {url: http://x}\nroutes:\n  - path: /a/{channel}\n    subscribe: {transports: "
         "[]}\n",
         "must name at least one transport"},
        {"backend: {url: http://x}\nroutes:\n  - path: /p/{id}\n    poll: {interval: 1s}\n",
         "missing required key 'poll.url'"},
        {"backend: {url: http://x}\nroutes:\n  - {path: '/a/{channel}', subscribe: {}}\n  - {path: "
         "'/a/{channel}', subscribe: {}}\n",
         "t.yaml:4:5: route path '/a/{channel}' is already used at line 3"},
        {"backend: {url: http://x}\nlisten: 127.0.0.1:9\npublish_listen: 127.0.0.1:9\n",
         "must differ"},
        {"backend: {url: http://x, timeout: }\n", "'timeout' needs a value"},
        {"backend: {url: http://x, trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]}\n",
         "t.yaml:1:56: invalid address block '10.0.0.0/33'"},
        {"backend: {url: http://x}\nmetrics: {drain_from: [nowhere]}\n",
         "t.yaml:2:24: invalid address block 'nowhere'"},
        {"backend: {url: http://x}\nwebhooks: {url: /h, events: [member_added, joined]}\n",
         "t.yaml:2:44: 'joined' is not channel_occupied"},
        {"backend: {url: http://x, request_buffer: 1MiB}\nlimits: {proxy_buffer_size: 64KiB}\n",
         "backend.request_buffer must not exceed limits.proxy_buffer_size"},
    };
    struct sp_diags d = {0};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sp_config *c = parse(cases[i].text, &d);
        ok(c == NULL && has_diag(&d, cases[i].diag), "error case %zu: %s", i, cases[i].diag);
        sp_config_release(c);
    }
    sp_diags_clear(&d);
}

static void test_all_errors_reported(void)
{
    struct sp_diags d = {0};
    struct sp_config *c = parse("listen: nowhere\n"
                                "backend:\n"
                                "  url: http://x\n"
                                "  timeout: 10\n"
                                "bogus: 1\n"
                                "limits: { max_header_size: huge }\n"
                                "log: { level: \"${UNSET}\" }\n",
                                &d);
    ok(c == NULL, "a file with five problems is refused");
    is_int(d.count, 5, "and every one of them is reported");
    ok(has_diag(&d, "t.yaml:1:9:") && has_diag(&d, "t.yaml:4:12:") && has_diag(&d, "t.yaml:5:1:") &&
           has_diag(&d, "t.yaml:6:28:") && has_diag(&d, "t.yaml:7:15:"),
       "each at its own line and column");
    sp_diags_clear(&d);
}

static void test_env_fallback(void)
{
    struct sp_diags d = {0};
    struct sp_config *c = parse("backend: {url: \"${BACKEND:-http://127.0.0.1:3000}\"}\n"
                                "publish: {auth: {bearer_token: \"$${literal}\"}}\n",
                                &d);
    ok(c != NULL, "fallback and escape parse");
    if (c) {
        is_str(c->backend.url, "http://127.0.0.1:3000", "${VAR:-fallback} uses the fallback");
        is_str(c->publish_auth.bearer_token, "${literal}", "$${ is a literal ${");
    }
    sp_config_release(c);
    sp_diags_clear(&d);
}

static void test_load_missing_file(void)
{
    struct sp_diags d = {0};
    struct sp_config *c = NULL;
    ok(sp_config_load("/nonexistent/sidepush.yaml", &c, &d) < 0 && c == NULL && d.count == 1,
       "a missing file is one clear error");
    sp_diags_clear(&d);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* ${file:PATH}: a mounted Secret's key, relative to the configuration's
 * directory or absolute; the paths read are the configuration's sources. */
static void test_file_values(void)
{
    char dir[] = "/tmp/sidepush-config-XXXXXX", conf[128], token[128], missing[128];
    struct sp_diags d = {0};
    struct sp_config *c = NULL;

    if (mkdtemp(dir) == NULL) {
        ok(false, "a temporary directory");
        return;
    }
    snprintf(conf, sizeof(conf), "%s/sidepush.yaml", dir);
    snprintf(token, sizeof(token), "%s/token", dir);
    snprintf(missing, sizeof(missing), "%s/absent", dir);
    write_file(token, "s3cret\n");
    write_file(conf, "backend: {url: http://x}\n"
                     "publish: {auth: {bearer_token: '${file:token}'}}\n");
    ok(sp_config_load(conf, &c, &d) == 0 && c != NULL, "a configuration with ${file:token}");
    if (c) {
        is_str(c->publish_auth.bearer_token, "s3cret", "the file's text, its newline dropped");
        ok(c->sources.count == 1 && strcmp(c->sources.paths[0], token) == 0,
           "the file read is a source, by its full path");
    }
    sp_config_release(c);
    c = NULL;
    char text[400];
    snprintf(text, sizeof(text),
             "backend: {url: http://x}\npublish: {auth: {bearer_token: '${file:%s}'}}\n", missing);
    write_file(conf, text);
    ok(sp_config_load(conf, &c, &d) < 0 && c == NULL && d.count == 1, "a missing file is refused");
    ok(d.count == 1 && strstr(d.lines[0], "sidepush.yaml:2:") != NULL &&
           strstr(d.lines[0], "No such file") != NULL,
       "with the place and the reason");
    sp_diags_clear(&d);
    unlink(token);
    unlink(conf);
    rmdir(dir);
}

static void test_redis(void)
{
    struct sp_diags d = {0};
    struct sp_config *c = parse("backend: {url: http://x}\n", &d);

    ok(c != NULL && !c->redis.enabled, "without a redis section everything stays in memory");
    sp_config_release(c);
    c = parse("backend: {url: http://x}\nredis: {}\n", &d);
    ok(c != NULL && c->redis.enabled, "an empty redis section enables Redis");
    if (c) {
        is_str(c->redis.host, "127.0.0.1", "default host");
        ok(c->redis.port == 6379 && c->redis.database == 0, "default port and database");
        is_str(c->redis.key_prefix, "sidepush:", "default key prefix");
        ok(c->redis.password == NULL && c->redis.username == NULL, "no AUTH by default");
        ok(c->redis.poll_lease_ms == 5000 && !c->redis.required_for_ready, "lease, readiness");
    }
    sp_config_release(c);
    c = parse("backend: {url: http://x}\n"
              "redis: {url: 'redis://app:${TOKEN}@cache.svc:6380/3', password: other}\n",
              &d);
    ok(c != NULL, "a redis:// URL with credentials and a database");
    if (c) {
        is_str(c->redis.host, "cache.svc", "URL host");
        ok(c->redis.port == 6380 && c->redis.database == 3, "URL port and database");
        is_str(c->redis.username, "app", "URL user");
        is_str(c->redis.password, "other", "redis.password wins over the URL's");
    }
    sp_config_release(c);
    c = parse("backend: {url: http://x}\nredis: {url: '[::1]:7000', database: 2}\n", &d);
    ok(c != NULL && strcmp(c->redis.host, "::1") == 0 && c->redis.port == 7000 &&
           c->redis.database == 2,
       "[v6]:port and database");
    sp_config_release(c);
    c = parse("backend: {url: http://x}\nredis: {url: 'rediss://cache.svc:6380'}\n", &d);
    ok(c != NULL && c->redis.tls && strcmp(c->redis.host, "cache.svc") == 0 &&
           c->redis.tls_files.verify_hostname,
       "rediss:// is TLS, the host name verified by default");
    sp_config_release(c);
    c = parse("backend: {url: http://x}\nredis: {url: 'redis://h', tls: {server_name: h}}\n", &d);
    ok(c == NULL && has_diag(&d, "redis.tls needs a rediss://"), "redis.tls without rediss://");
    sp_config_release(c);
    static const char *const bad[] = {"'redis://h:0'", "'h:99999'",       "'redisx://h'",
                                      "'h/x'",         "'redis://h/abc'", "':6379'"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "backend: {url: http://x}\nredis: {url: %s}\n", bad[i]);
        c = parse(text, &d);
        ok(c == NULL && has_diag(&d, "t.yaml:2:14: redis.url"), "bad redis.url %s", bad[i]);
        sp_config_release(c);
    }
    sp_diags_clear(&d);
}

int main(void)
{
    test_minimal_and_defaults();
    test_full();
    test_errors();
    test_all_errors_reported();
    test_env_fallback();
    test_load_missing_file();
    test_file_values();
    test_redis();
    return tap_done();
}
