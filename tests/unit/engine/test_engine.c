/* The Redis engine against a real redis-server on loopback, with three
 * replicas (three engines, each with its own hub) on one loop: numbering
 * and storing once, delivery to a replica following the channel, history
 * read by a replica that comes later, de-duplication, used-once claims,
 * poll leases, presence shared across replicas, channel info and delete,
 * and publishes refused once Redis is gone. Skipped without redis-server. */
#include "engine/engine.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel/presence.h"
#include "config/config.h"

#include "../tap.h"

/* ---- a redis-server of the test's own ----------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool answers(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return up;
}

static pid_t redis_start(int port)
{
    char p[16];
    pid_t pid;

    snprintf(p, sizeof(p), "%d", port);
    if ((pid = fork()) == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { /* its log would break the TAP stream */
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; pid > 0 && i < 500 && !answers(port); i++)
        usleep(10000);
    return pid;
}

static void redis_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ---- replicas ---------------------------------------------------------------------------- */

struct replica {
    struct sp_hub *hub;
    struct sp_presence *presence;
    struct sp_engine *engine;
    char told[256]; /* the deployment's joins and leaves, as this replica heard them */
};

static void presence_changed(void *ctx, enum sp_presence_change change, const char *channel,
                             const char *user_id, const char *info)
{
    struct replica *r = ctx;

    (void)change;
    (void)info;
    sp_engine_share_member(r->engine, channel, user_id);
}

static void told_member(void *ctx, bool joined, const char *channel, const char *user_id,
                        const char *info, size_t members)
{
    struct replica *r = ctx;
    size_t len = strlen(r->told);

    (void)info;
    snprintf(r->told + len, sizeof(r->told) - len, "%c%s/%s=%zu ", joined ? '+' : '-', channel,
             user_id, members);
}

static void told_occupancy(void *ctx, bool occupied, const char *channel)
{
    (void)ctx;
    (void)occupied;
    (void)channel;
}

static int replica_new(struct replica *r, struct event_base *base, const struct sp_config *config)
{
    const struct sp_hub_options opts = {
        .history = 10, .history_ttl_ms = 60000, .max_message_size = 4096};

    memset(r, 0, sizeof(*r));
    r->hub = sp_hub_new(base, &opts, 1);
    r->presence = sp_presence_new(base, 50, presence_changed, r);
    if (r->hub == NULL || r->presence == NULL)
        return -1;
    const struct sp_engine_env env = {
        .base = base,
        .config = config,
        .hub = r->hub,
        .presence = r->presence,
        .events = {told_member, told_occupancy, r},
    };
    r->engine = sp_engine_new(&env);
    return r->engine ? 0 : -1;
}

static void replica_free(struct replica *r)
{
    sp_engine_free(r->engine);
    sp_presence_free(r->presence);
    sp_hub_free(r->hub);
}

/* ---- waiting on the loop ------------------------------------------------------------------ */

static struct event_base *base;

static void turn(void)
{
    struct timeval tv = {0, 10000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                \
            turn();                                                                                \
    } while (0)

/* What a callback said. */
struct answer {
    bool done;
    int rc;
    bool ok, held, fresh, duplicate;
    char id[SP_MSG_ID_MAX];
    char text[512];
    size_t replicas, messages;
};

static void on_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct answer *a = arg;

    a->done = true;
    a->rc = rc;
    if (res != NULL) {
        snprintf(a->id, sizeof(a->id), "%s", res->id);
        a->duplicate = res->duplicate;
    }
}

static void on_synced(void *arg, bool ok)
{
    struct answer *a = arg;
    a->done = true;
    a->ok = ok;
}

static void on_claimed(void *arg, int rc, const char *prior)
{
    struct answer *a = arg;

    a->done = true;
    a->rc = rc;
    snprintf(a->text, sizeof(a->text), "%s", prior ? prior : "(none)");
}

static void on_leased(void *arg, const char *channel, bool held, bool fresh,
                      const struct sp_engine_poll_state *state)
{
    struct answer *a = arg;

    (void)channel;
    (void)state;
    a->done = true;
    a->held = held;
    a->fresh = fresh;
}

static void on_channel(void *arg, const struct sp_engine_channel *info)
{
    struct answer *a = arg;

    a->done = true;
    a->rc = info->rc;
    a->messages = info->messages;
    a->replicas = info->replicas;
    snprintf(a->id, sizeof(a->id), "%s", info->last_id);
}

static void on_members(void *arg, const char *json)
{
    struct answer *a = arg;

    a->done = true;
    snprintf(a->text, sizeof(a->text), "%s", json ? json : "(unavailable)");
}

static struct answer publish(struct replica *r, const char *channel, const char *data,
                             const char *dedup)
{
    struct answer a = {0};
    const struct sp_engine_publish p = {
        .pub = {.channel = channel, .data = data, .len = strlen(data), .dedup_id = dedup}};

    a.rc = sp_engine_publish(r->engine, &p, on_published, &a);
    if (a.rc == 0)
        RUN_UNTIL(a.done);
    return a;
}

static size_t messages(struct replica *r, const char *channel, char last[SP_MSG_ID_MAX])
{
    struct sp_channel_info info = {0};

    if (sp_hub_channel_info(r->hub, channel, &info) < 0)
        return 0;
    snprintf(last, SP_MSG_ID_MAX, "%s", info.last_id);
    return info.messages;
}

/* Follows channel as a hub watch would, and waits until it is synced. */
static bool follow(struct replica *r, const char *channel)
{
    struct answer a = {0};
    struct sp_engine_wait *w;

    sp_engine_watch(r->engine, channel, 1);
    int rc = sp_engine_wait(r->engine, channel, on_synced, &a, &w);
    if (rc == 0)
        RUN_UNTIL(a.done);
    return rc == 1 || (a.done && a.ok);
}

/* ---- the tests ------------------------------------------------------------------------------ */

static void test_publish_and_history(struct replica *a, struct replica *b,
                                     const struct sp_config *config)
{
    char last[SP_MSG_ID_MAX];

    ok(follow(b, "news"), "a replica follows a channel: subscribed and synced");
    struct answer first = publish(a, "news", "one", NULL);
    is_int(first.rc, SP_HUB_OK, "another replica publishes on it");
    ok(strchr(first.id, '-') != NULL, "numbered <epoch>-<seq> by Redis (%s)", first.id);
    RUN_UNTIL(messages(b, "news", last) == 1);
    is_int(messages(b, "news", last), 1, "the follower's hub got it by pub/sub");
    is_str(last, first.id, "under the id Redis gave");
    is_int(messages(a, "news", last), 0, "the publisher, not following, stores nothing itself");

    struct answer d1 = publish(a, "news", "two", "hook-7");
    struct answer d2 = publish(a, "news", "two again", "hook-7");
    ok(d1.rc == SP_HUB_OK && !d1.duplicate, "a publish with a de-duplication id");
    ok(d2.rc == SP_HUB_OK && d2.duplicate, "its retry is a duplicate, stored once");
    RUN_UNTIL(messages(b, "news", last) == 2);
    turn();
    is_int(messages(b, "news", last), 2, "the follower has two messages, not three");

    struct replica c;
    ok(replica_new(&c, base, config) == 0, "a third replica comes up later");
    RUN_UNTIL(sp_engine_up(c.engine));
    ok(follow(&c, "news"), "and follows the channel");
    is_int(messages(&c, "news", last), 2, "its history read from the channel's stream");
    is_str(last, d1.id, "ending where the others' does");
    replica_free(&c);
}

static void test_claims_and_leases(struct replica *a, struct replica *b)
{
    struct answer c1 = {0}, c2 = {0}, l1 = {0}, l2 = {0}, l3 = {0};

    ok(sp_engine_claim(a->engine, "t:claim:x", "first", 60000, on_claimed, &c1) == 0,
       "a signed webhook id is claimed");
    RUN_UNTIL(c1.done);
    is_str(c1.text, "(none)", "the first claim holds it");
    sp_engine_claim(b->engine, "t:claim:x", "second", 60000, on_claimed, &c2);
    RUN_UNTIL(c2.done);
    is_str(c2.text, "first", "a claim at another replica learns who was first");

    sp_engine_lease(a->engine, "feed", on_leased, &l1);
    RUN_UNTIL(l1.done);
    ok(l1.held && l1.fresh, "one replica takes a channel's poll lease");
    sp_engine_lease(b->engine, "feed", on_leased, &l2);
    RUN_UNTIL(l2.done);
    ok(!l2.held, "another does not get it meanwhile");
    sp_engine_release(a->engine, "feed");
    turn();
    sp_engine_lease(b->engine, "feed", on_leased, &l3);
    RUN_UNTIL(l3.done);
    ok(l3.held, "once released, the other takes it");
}

static void test_presence(struct replica *a, struct replica *b)
{
    struct answer m = {0};

    sp_presence_join(a->presence, "room", "alice", NULL);
    RUN_UNTIL(strstr(a->told, "+room/alice") != NULL);
    is_str(a->told, "+room/alice=1 ", "a member joining at one replica is told once");
    sp_presence_join(b->presence, "room", "alice", NULL);
    sp_presence_join(b->presence, "room", "bob", NULL);
    RUN_UNTIL(strstr(b->told, "+room/bob") != NULL);
    is_str(b->told, "+room/bob=2 ",
           "her second tab at another replica is no join; bob's is, the second member");
    sp_engine_members(a->engine, "room", 10, on_members, &m);
    RUN_UNTIL(m.done);
    ok(strstr(m.text, "\"count\":2") != NULL, "the deployment's list has both (%s)", m.text);
    sp_presence_leave(a->presence, "room", "alice");
    for (int i = 0; i < 30; i++) /* past the 50 ms grace and Redis's answer */
        turn();
    ok(strstr(a->told, "-room/alice") == NULL && strstr(b->told, "-room/alice") == NULL,
       "leaving one replica while connected at another is no leave");
    sp_presence_leave(b->presence, "room", "alice");
    RUN_UNTIL(strstr(b->told, "-room/alice") != NULL);
    ok(strstr(b->told, "-room/alice=1") != NULL, "her last connection going is the leave");
}

static void test_channel_admin(struct replica *a, struct replica *b)
{
    struct answer info = {0}, del = {0};
    char last[SP_MSG_ID_MAX];

    sp_engine_channel_info(a->engine, "news", on_channel, &info);
    RUN_UNTIL(info.done);
    ok(info.rc == SP_HUB_OK && info.messages == 2, "channel info: two messages in the stream");
    sp_engine_channel_delete(a->engine, "news", on_channel, &del);
    RUN_UNTIL(del.done);
    ok(del.rc == SP_HUB_OK && del.replicas >= 1, "delete tells the replicas following it");
    RUN_UNTIL(messages(b, "news", last) == 0);
    is_int(messages(b, "news", last), 0, "the follower dropped its history");
}

int main(void)
{
    char yaml[512];
    struct sp_config *config = NULL;
    struct sp_diags diags = {0};
    int port = free_port();
    pid_t redis;

    if (access("/usr/bin/redis-server", X_OK) != 0 &&
        system("command -v redis-server >/dev/null")) {
        printf("1..0 # SKIP redis-server is not installed (.ci/deps test installs it)\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (port < 0 || (redis = redis_start(port)) <= 0 || !answers(port)) {
        printf("not ok 1 - a redis-server of our own on loopback\n1..1\n");
        return 1;
    }
    snprintf(yaml, sizeof(yaml),
             "backend: { url: 'http://127.0.0.1:9' }\n"
             "redis: { url: '127.0.0.1:%d', key_prefix: 't:', subscribe_wait: 3s,\n"
             "         reconnect_max: 200ms, poll_lease: 2s }\n",
             port);
    if (sp_config_parse("test.yaml", yaml, strlen(yaml), NULL, NULL, &config, &diags) < 0) {
        printf("not ok 1 - the configuration\n1..1\n");
        redis_stop(redis);
        return 1;
    }
    base = event_base_new();
    struct replica a, b;
    ok(replica_new(&a, base, config) == 0 && replica_new(&b, base, config) == 0,
       "two replicas, each with its hub and engine");
    RUN_UNTIL(sp_engine_up(a.engine) && sp_engine_up(b.engine));
    ok(sp_engine_up(a.engine) && sp_engine_up(b.engine), "both connected, scripts loaded");

    test_publish_and_history(&a, &b, config);
    test_claims_and_leases(&a, &b);
    test_presence(&a, &b);
    test_channel_admin(&a, &b);

    redis_stop(redis);
    RUN_UNTIL(!sp_engine_up(a.engine));
    ok(!sp_engine_up(a.engine), "Redis gone: the engine knows");
    struct answer gone = publish(&a, "news", "lost?", NULL);
    is_int(gone.rc, SP_HUB_UNAVAILABLE, "a publish is refused, never silently dropped");

    replica_free(&a);
    replica_free(&b);
    event_base_free(base);
    sp_config_release(config);
    return tap_done();
}
