/* One Redis connection on a libevent loop that keeps itself connected: the
 * host name is resolved with evdns (never a blocking getaddrinfo on the
 * loop), AUTH and SELECT run before it reports up, a connect or a command
 * that takes longer than its timeout counts as a lost connection, and every
 * loss is followed by a reconnect after an exponential backoff with full
 * jitter.
 *
 * The bytes go over a bufferevent, plain or OpenSSL's (TLS with the
 * server's certificate and name verified, optionally a client
 * certificate), and hiredis speaks RESP: its command formatter writes the
 * commands and its reader parses the replies. hiredis 0.14 (Debian 12) has
 * neither TLS nor timeouts in its async API.
 */
#ifndef SP_NET_REDIS_H
#define SP_NET_REDIS_H

#include <event2/event.h>
#include <hiredis/async.h> /* redisCallbackFn: its first argument is always NULL here */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

struct evdns_base;
struct sp_redis;

struct sp_redis_options {
    const char *host; /* NULL: no server yet (sp_redis_set_target) */
    unsigned port;
    const char *username; /* NULL: AUTH with the password only */
    const char *password; /* NULL: no AUTH */
    unsigned database;
    uint64_t connect_timeout_ms; /* resolve + connect + AUTH + SELECT */
    uint64_t timeout_ms;         /* a command without an answer for this long */
    uint64_t reconnect_max_ms;   /* backoff ceiling */
    bool ping;                   /* PING when idle, so a silent server is noticed */
    bool tls;
    const char *tls_ca_file;   /* PEM; NULL: the system's CAs */
    const char *tls_cert_file; /* a client certificate chain (mTLS), with tls_key_file */
    const char *tls_key_file;
    const char *tls_server_name; /* sent (SNI) and checked; NULL: host */
    bool tls_verify_hostname;    /* the certificate must name it (else only its chain is checked) */
    bool require_primary;        /* ROLE must say master (Sentinel: never write to a replica) */
    /* Each connection attempt waits for sp_redis_set_target to name the
     * server again (Sentinel: a primary that died and restarted empty is
     * a master until Sentinel makes it a replica, and is never written to
     * on the strength of an answer from before the loss). */
    bool confirm_target;
};

struct sp_redis_ops {
    /* Connected and ready for commands. */
    void (*up)(void *ctx);
    /* Lost (or never made); why is for the log. A reconnect is scheduled;
     * commands in flight have had their callbacks run with a NULL reply. */
    void (*down)(void *ctx, const char *why, uint64_t retry_ms);
};

/* Starts connecting at once. opts' strings are copied; the TLS files are
 * read now. NULL on allocation failure or TLS files that do not load. */
struct sp_redis *sp_redis_new(struct event_base *base, struct evdns_base *dns,
                              const struct sp_redis_options *opts, const struct sp_redis_ops *ops,
                              void *ctx);
/* Commands in flight have their callbacks run with a NULL reply; ops are not
 * called any more. Accepts NULL. */
void sp_redis_free(struct sp_redis *r);

bool sp_redis_is_up(const struct sp_redis *r);

/* Another server (Sentinel named a new primary): a connection to the old
 * one is dropped, and the next goes to host:port. Same target: nothing
 * happens, but with confirm_target the next attempt may go ahead. Returns
 * 0, or -1 on allocation failure. */
int sp_redis_set_target(struct sp_redis *r, const char *host, unsigned port);

/* New credentials for the next AUTH (a rotated password): the connection
 * up now stays. Returns 0, or -1 on allocation failure (nothing changed). */
int sp_redis_set_auth(struct sp_redis *r, const char *username, const char *password);

/* A command as argv (binary-safe). fn gets the reply, or NULL when the
 * connection was lost first. Returns 0, or -1 when not up (fn not called). */
int sp_redis_command(struct sp_redis *r, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *argvlen);

/* Ends the connection now and reconnects after the backoff (a protocol
 * error noticed by the caller). */
void sp_redis_reset(struct sp_redis *r, const char *why);

/* "host:port" of the server connected to, or to be connected to next. */
void sp_redis_target(const struct sp_redis *r, char *out, size_t size);

/* Connections made and lost since the start. */
uint64_t sp_redis_connects(const struct sp_redis *r);
uint64_t sp_redis_losses(const struct sp_redis *r);

#endif
