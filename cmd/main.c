/* sidepush: arguments, signals, configuration, and the event loop. */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app/app.h"
#include "http/proxy.h"
#include "config/config.h"
#include "core/cpus.h"
#include "core/log.h"
#include "net/filewatch.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: sidepush --config FILE        run with FILE\n"
                 "       sidepush --check-config FILE  validate FILE and exit (0 = valid)\n"
                 "       sidepush --help-config        list every configuration key and default\n"
                 "       sidepush --version | --help\n");
}

static void warn_at(void *path, const char *text)
{
    fprintf(stderr, "%s:%s\n", (const char *)path, text);
}

static int load(const char *path, struct sp_config **config)
{
    struct sp_diags diags = {0};

    int rc = sp_config_load(path, config, &diags);
    for (size_t i = 0; i < diags.count; i++)
        fprintf(stderr, "%s\n", diags.lines[i]);
    sp_diags_clear(&diags);
    if (rc == 0)
        sp_config_channel_overlaps(*config, warn_at, (void *)path);
    return rc;
}

/* What the pod or the host gives this process, and so how many workers
 * "workers: auto" runs; logged so a user can see a CPU limit was understood. */
static unsigned choose_workers(const struct sp_log *log, const struct sp_config *config)
{
    int affinity, quota;
    int usable = sp_cpus_usable(&affinity, &quota);
    char quota_text[16] = "none";
    unsigned workers = config->workers ? (unsigned)config->workers : (unsigned)usable;

    if (workers < 1)
        workers = 1;
    if (quota > 0)
        snprintf(quota_text, sizeof(quota_text), "%d", quota);
    sp_log_info(log, "cpus", "%d usable (affinity mask %d, cgroup v2 quota %s); %u worker%s (%s)",
                usable, affinity, quota_text, workers, workers == 1 ? "" : "s",
                config->workers ? "workers in the configuration" : "workers: auto");
    return workers;
}

/* Every subscriber is a socket: take all the descriptors the hard limit
 * allows, and say what that means for capacity. */

static void raise_fd_limit(const struct sp_log *log)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    sp_log_info(log, "fd_limit", "open-files limit %llu: room for about %llu connections",
                (unsigned long long)rl.rlim_cur,
                (unsigned long long)(rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 0));
}

struct runner {
    struct event_base *base;
    struct sp_app *app;
    bool stopping;
    const char *path;
    struct sp_log *log;
    struct sp_config *config;   /* the running one: a reload's replaces it */
    struct sp_filewatch *watch; /* the configuration's files, while watch_config */
};

static void on_files_changed(void *arg);

/* Watches the files the running configuration was read from (itself and
 * every ${file:}), or nothing when it says watch_config: false. */
static void watch_files(struct runner *r)
{
    const struct sp_config *c = r->config;
    const char **paths = calloc(c->sources.count + 1, sizeof(*paths));
    char seen[SP_FILEWATCH_SEEN];
    bool had = r->watch != NULL;

    /* The new watcher starts from what the old one last saw (before this
     * load): a change made since is reloaded too. */
    if (had)
        sp_filewatch_seen(r->watch, seen);
    sp_filewatch_free(r->watch);
    r->watch = NULL;
    if (!c->watch_config || paths == NULL) {
        free(paths);
        return;
    }
    paths[0] = r->path;
    for (size_t i = 0; i < c->sources.count; i++)
        paths[i + 1] = c->sources.paths[i];
    r->watch = sp_filewatch_new(r->base, paths, c->sources.count + 1, had ? seen : NULL, 200,
                                on_files_changed, r);
    if (r->watch == NULL)
        sp_log_warn(r->log, "watch_failed", "%s: changes apply on SIGHUP only: %s", r->path,
                    strerror(errno));
    free(paths);
}

/* SIGHUP or a change on disk: the same load path as --check-config; a bad
 * file changes nothing. */
static void reload(struct runner *r)
{
    struct sp_diags diags = {0};
    struct sp_config *fresh = NULL;

    if (r->app == NULL || r->stopping)
        return;
    if (sp_config_load(r->path, &fresh, &diags) < 0) {
        for (size_t i = 0; i < diags.count; i++)
            sp_log_error(r->log, "reload_rejected", "%s", diags.lines[i]);
        sp_log_error(r->log, "reload_rejected", "%s: kept the running configuration", r->path);
        sp_diags_clear(&diags);
        return;
    }
    char err[512];
    if (sp_app_reconfigure(r->app, fresh, err, sizeof(err)) < 0) {
        sp_log_error(r->log, "reload_rejected", "%s: %s; kept the running configuration", r->path,
                     err);
        sp_config_release(fresh);
        return;
    }
    /* What still points into the old one (a worker yet to switch, a
     * WebSocket subscriber, a poller) holds it; the last lets it go. */
    sp_config_release(r->config);
    r->config = fresh;
    r->log->level = fresh->log.level;
    sp_log_info(r->log, "reloaded", "%s: %zu routes", r->path, fresh->nroutes);
    watch_files(r); /* the new configuration may read other files */
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    reload(arg);
}

static void on_files_changed(void *arg)
{
    struct runner *r = arg;

    sp_log_info(r->log, "config_changed", "%s: its files changed on disk; reloading", r->path);
    reload(r);
}

static void on_drained(void *arg)
{
    event_base_loopexit(arg, NULL);
}

/* The first SIGTERM (or SIGINT) drains gracefully; a second one stops now. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct runner *r = arg;

    if (r->stopping || r->app == NULL) {
        event_base_loopexit(r->base, NULL);
        return;
    }
    r->stopping = true;
    sp_app_drain(r->app, on_drained, r->base);
}

static int run(const char *path)
{
    struct sp_config *config = NULL;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    struct sp_app *app = NULL;
    struct sp_log log = {SP_LOG_INFO, stdout};
    struct runner runner = {0};
    char err[256];
    int rc = 1;

    if (load(path, &config) < 0)
        return 2;
    log.level = config->log.level;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&log);
    unsigned workers = choose_workers(&log, config);
    base = sp_app_base_new();
    if (base == NULL)
        goto done;
    runner.base = base;
    runner.path = path;
    runner.log = &log;
    runner.config = config;
    /* Before the listeners open: a change made once clients can connect
     * is one the watcher has seen happen. */
    watch_files(&runner);
    sigterm = evsignal_new(base, SIGTERM, on_stop_signal, &runner);
    sigint = evsignal_new(base, SIGINT, on_stop_signal, &runner);
    sighup = evsignal_new(base, SIGHUP, on_reload_signal, &runner);
    if (sigterm == NULL || sigint == NULL || sighup == NULL || event_add(sigterm, NULL) ||
        event_add(sigint, NULL) || event_add(sighup, NULL))
        goto done;
    app = sp_app_new(base, config, workers, &log, err, sizeof(err));
    runner.app = app;
    if (app == NULL || sp_app_start(app, err, sizeof(err)) < 0) {
        sp_log_error(&log, "startup_failed", "%s", err);
        goto done;
    }
    char listen[80], publish[80];
    sp_address_format(&config->listen, listen, sizeof(listen));
    sp_address_format(&config->publish_listen, publish, sizeof(publish));
    sp_log_info(&log, "config", "%s: %zu routes, history %llu messages, shutdown_grace %llu ms",
                path, config->nroutes, (unsigned long long)config->channels.history,
                (unsigned long long)config->shutdown_grace_ms);
    sp_log_info(&log, "started", "sidepush %s listening on %s (publish %s), backend %s", SP_VERSION,
                listen, publish, config->backend.url);
    event_base_dispatch(base);
    sp_log_info(&log, "stopped", "shutting down");
    rc = 0;
done:
    sp_filewatch_free(runner.watch);
    sp_app_free(app);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (base)
        event_base_free(base);
    sp_config_release(runner.config ? runner.config : config);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", required_argument, NULL, 'n'},
        {"help-config", no_argument, NULL, 'K'},  {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *check = NULL;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:n:Vh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            check = optarg;
            break;
        case 'K':
            sp_config_print_reference(stdout);
            return 0;
        case 'V':
            printf("sidepush %s\n", SP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (config == NULL) == (check == NULL)) {
        usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sidepush: libcurl failed to initialise\n");
        return 1;
    }
    int rc;
    if (check != NULL) {
        struct sp_config *checked = NULL;
        char err[512];
        rc = load(check, &checked) < 0 ? 1 : 0;
        /* A warning only: the check may run where the pod's DNS is not (CI). */
        if (rc == 0 && sp_proxy_check_backend(checked->backend.url, err, sizeof(err)) < 0)
            fprintf(stderr, "%s: warning: %s\n", check, err);
        if (rc == 0)
            printf("%s: configuration is valid\n", check);
        sp_config_release(checked);
    } else {
        rc = run(config);
    }
    curl_global_cleanup();
    return rc;
}
