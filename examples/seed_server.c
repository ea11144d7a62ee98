/*
 * bulwark-server: the seed's "Much better!" server, written on bulwark.
 *
 * A primary forks WORKERS workers (default 2) that share a listening socket
 * on HOST:PORT (default 127.0.0.1:1337). Each request runs in its own
 * domain. When a request fails, its worker answers it 500, stops
 * accepting, tells the primary (which forks a replacement at once), lets
 * every other request finish, and exits; a kill timer (KILL_TIMEOUT_MS,
 * default 30000) ends it if draining takes too long.
 *
 * Routes:
 *   /                 "ok"
 *   /error            faults asynchronously in a timer callback, as the seed's
 *                     flerb.bark() does (a call through a NULL object)
 *   /throw            bw_throw from the handler
 *   /segv             NULL dereference in the handler
 *   /abort            abort()
 *   /assert           a failed assert()
 *   /fpe              integer division by zero
 *   /stack-overflow   unbounded recursion
 *   /emit-error       an emitter's `error` event with no listener
 *   /callback-error   an error handed to an intercepted callback (ENOENT)
 *   /hang             a busy loop: the callback limit interrupts it (a 500, and
 *                     the worker retires like after a fault); with the limit
 *                     off, the primary's hang detection kills the worker
 *   /cleanup-segv     answers 200, then a cleanup of its domain faults: the
 *                     worker, in doubt, retires gracefully
 *   /pid              the worker's process id (which worker serves a connection)
 *   /peer             the client's address as the server sees it (behind
 *                     PROXY_PROTOCOL=1: the one the proxy's header gave)
 *   /slow?ms=N        answers after N ms
 *   /hog?mb=N         allocates N MiB (default 1) and keeps it: the worker's
 *                     resident memory grows (for MAX_MEMORY_MB)
 *   /segv/ANYTHING    /segv under any path (an attacker who varies the path)
 *   /parse?QUERY      answers "parsed"; a query with "bad" in it faults (one
 *                     bad input on a good route)
 *
 * Settings: each has a command-line flag and an environment variable, the
 * flag winning (`bulwark-server --help` lists them with their defaults):
 * HOST, PORT, WORKERS, KILL_TIMEOUT_MS, ERROR_DELAY_MS (the /error timer,
 * default 10), FAIL_AT_START=1 (every worker faults before it listens:
 * shows the primary's crash-loop protection), FAIL_AT_START_IF=<file> (the
 * same for workers started while that file exists: a rolling restart into
 * a generation that cannot start is abandoned),
 * HEARTBEAT_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, SHUTDOWN_TIMEOUT_MS,
 * POISON_THRESHOLD (0 turns quarantine off), POISON_WINDOW_MS, QUARANTINE_MS,
 * CLIENT_FAULT_BUDGET (crashes a client address may cause within
 * CLIENT_FAULT_WINDOW_MS before it is answered 429 for CLIENT_BLOCK_MS; 0:
 * off; each 429 CLIENT_BLOCK_DELAY_MS late),
 * RESTART_INTENSITY and RESTART_PERIOD_MS (crash-loop protection),
 * MAX_FORKS_PER_SECOND (the ceiling on forks, whatever their cause),
 * RESPONSE_TIMEOUT_MS (a request unanswered this long is an error in its
 * domain, handled like a fault; default 0: off),
 * CALLBACK_LIMIT_MS (a callback busy this long, in CPU time, is interrupted
 * and is an error in its domain, handled like a fault; default 1000; 0: off),
 * KEEP_ON_ERRORS (1: a throw or an unhandled error event costs only its
 * request, a fault still retires the worker; default 0, the seed's policy),
 * HANDOFF (0: a retiring worker closes its idle connections instead of
 * handing them to a sibling; default 1), HANDOFF_TIMEOUT_MS,
 * UPGRADE_TIMEOUT_MS (SIGUSR2 execs the program file again; a new primary
 * not ready this soon is killed and this one serves on), ADMIN_PORT and
 * ADMIN_HOST (the primary's /metrics, /healthz and /readyz; 0: off, -1:
 * any free port; loopback by default),
 * MAX_REQUESTS and MAX_REQUESTS_JITTER (a worker is recycled, replaced
 * first, after MAX_REQUESTS + a random 0..jitter requests; 0: never),
 * MAX_MEMORY_MB (recycled past this resident memory; 0: never),
 * RUN_AS_USER and RUN_AS_GROUP (--user, --group: the workers drop to them;
 * the primary keeps its own), ALLOW_ROOT (as root with no user: 1 runs
 * root workers silently, 0 refuses to start, unset warns), PID_FILE,
 * ACCESS_LOG (a file, or - for standard error) and ACCESS_LOG_FORMAT
 * (combined or json), REQUEST_ID_HEADER (1: X-Request-Id on every
 * response),
 * PROXY_PROTOCOL (1: every connection begins with a PROXY protocol v1 or
 * v2 header, as a load balancer's send-proxy writes it, whose source is
 * the client's address; default 0).
 * The library reads its own variables besides (environment only):
 * BW_EVENT_LOG (JSON lines of the primary's events), BW_LOG_LEVEL,
 * BW_LOG_FORMAT (text, the default, or json: one JSON object per line,
 * crash reports included; see bulwark/log.h), BW_CALLBACK_LIMIT_MS,
 * BW_ABORT_ON_UNCAUGHT.
 */
#undef NDEBUG /* /assert needs a live assert() */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulwark.h"

static uint64_t error_delay_ms = 10;

/* ---- Settings: a flag and an environment variable each --------------- */

enum {
    S_HOST,
    S_PORT,
    S_WORKERS,
    S_KILL_TIMEOUT_MS,
    S_SHUTDOWN_TIMEOUT_MS,
    S_DRAIN_DELAY_MS,
    S_HEARTBEAT_INTERVAL_MS,
    S_HEARTBEAT_TIMEOUT_MS,
    S_POISON_THRESHOLD,
    S_POISON_WINDOW_MS,
    S_QUARANTINE_MS,
    S_CLIENT_FAULT_BUDGET,
    S_CLIENT_FAULT_WINDOW_MS,
    S_CLIENT_BLOCK_MS,
    S_CLIENT_BLOCK_DELAY_MS,
    S_RESTART_INTENSITY,
    S_RESTART_PERIOD_MS,
    S_MAX_FORKS_PER_SECOND,
    S_HANDOFF,
    S_HANDOFF_TIMEOUT_MS,
    S_UPGRADE_TIMEOUT_MS,
    S_ADMIN_PORT,
    S_ADMIN_HOST,
    S_ACCESS_LOG,
    S_ACCESS_LOG_FORMAT,
    S_REQUEST_ID_HEADER,
    S_RESPONSE_TIMEOUT_MS,
    S_CALLBACK_LIMIT_MS,
    S_KEEP_ON_ERRORS,
    S_ERROR_DELAY_MS,
    S_FAIL_AT_START,
    S_FAIL_AT_START_IF,
    S_MAX_REQUESTS,
    S_MAX_REQUESTS_JITTER,
    S_MAX_MEMORY_MB,
    S_RUN_AS_USER,
    S_RUN_AS_GROUP,
    S_ALLOW_ROOT,
    S_PID_FILE,
    S_PROXY_PROTOCOL,
    S_COUNT
};

typedef struct setting {
    const char *flag;   /* --flag=VALUE */
    const char *env;    /* the environment variable the flag overrides */
    const char *arg;    /* VALUE in --help: N (a number) or a word */
    const char *help;
    char def[32];       /* the default, for --help (main fills the cluster's) */
    const char *value;  /* from the command line, or NULL */
} setting;

static setting settings[S_COUNT] = {
    [S_HOST] = {"host", "HOST", "ADDR", "the address to listen on", "127.0.0.1", NULL},
    [S_PORT] = {"port", "PORT", "N", "the port to listen on (0: any free port)", "1337", NULL},
    [S_WORKERS] = {"workers", "WORKERS", "N", "how many workers to keep running", "", NULL},
    [S_KILL_TIMEOUT_MS] = {"kill-timeout-ms", "KILL_TIMEOUT_MS", "N",
                           "a draining worker's deadline", "", NULL},
    [S_DRAIN_DELAY_MS] = {"drain-delay-ms", "DRAIN_DELAY_MS", "N",
                          "SIGTERM: /readyz 503 and serving on this long before the drain", "",
                          NULL},
    [S_SHUTDOWN_TIMEOUT_MS] = {"shutdown-timeout-ms", "SHUTDOWN_TIMEOUT_MS", "N",
                               "SIGTERM's and SIGINT's deadline", "", NULL},
    [S_HEARTBEAT_INTERVAL_MS] = {"heartbeat-interval-ms", "HEARTBEAT_INTERVAL_MS", "N",
                                 "how often a worker tells the primary it is alive", "", NULL},
    [S_HEARTBEAT_TIMEOUT_MS] = {"heartbeat-timeout-ms", "HEARTBEAT_TIMEOUT_MS", "N",
                                "no heartbeat this long: the worker is hung and killed", "",
                                NULL},
    [S_POISON_THRESHOLD] = {"poison-threshold", "POISON_THRESHOLD", "N",
                            "crashes of one route that quarantine it (0: never)", "", NULL},
    [S_POISON_WINDOW_MS] = {"poison-window-ms", "POISON_WINDOW_MS", "N",
                            "...within this window", "", NULL},
    [S_QUARANTINE_MS] = {"quarantine-ms", "QUARANTINE_MS", "N", "how long a quarantine lasts",
                         "", NULL},
    [S_CLIENT_FAULT_BUDGET] = {"client-fault-budget", "CLIENT_FAULT_BUDGET", "N",
                               "crashes one client address may cause... (0: no limit)", "",
                               NULL},
    [S_CLIENT_FAULT_WINDOW_MS] = {"client-fault-window-ms", "CLIENT_FAULT_WINDOW_MS", "N",
                                  "...within this window", "", NULL},
    [S_CLIENT_BLOCK_MS] = {"client-block-ms", "CLIENT_BLOCK_MS", "N",
                           "then it is answered 429 this long", "", NULL},
    [S_CLIENT_BLOCK_DELAY_MS] = {"client-block-delay-ms", "CLIENT_BLOCK_DELAY_MS", "N",
                                 "each of those 429s this late (0: at once)", "", NULL},
    [S_RESTART_INTENSITY] = {"restart-intensity", "RESTART_INTENSITY", "N",
                             "start-up failures that stop the primary...", "", NULL},
    [S_RESTART_PERIOD_MS] = {"restart-period-ms", "RESTART_PERIOD_MS", "N",
                             "...within this period", "", NULL},
    [S_MAX_FORKS_PER_SECOND] = {"max-forks-per-second", "MAX_FORKS_PER_SECOND", "N",
                                "a ceiling on forks, whatever their cause (0: none)", "", NULL},
    [S_HANDOFF] = {"handoff", "HANDOFF", "0|1",
                   "1: a retiring worker hands its idle connections to a sibling", "1", NULL},
    [S_HANDOFF_TIMEOUT_MS] = {"handoff-timeout-ms", "HANDOFF_TIMEOUT_MS", "N",
                              "how long handed connections may wait for a taker", "", NULL},
    [S_UPGRADE_TIMEOUT_MS] = {"upgrade-timeout-ms", "UPGRADE_TIMEOUT_MS", "N",
                              "SIGUSR2: a new primary not ready this soon is killed", "", NULL},
    [S_ADMIN_PORT] = {"admin-port", "ADMIN_PORT", "N|-1",
                      "the primary's /metrics, /healthz, /readyz (0: off, -1: any port)", "0",
                      NULL},
    [S_ADMIN_HOST] = {"admin-host", "ADMIN_HOST", "ADDR", "the admin listener's address",
                      "127.0.0.1", NULL},
    [S_ACCESS_LOG] = {"access-log", "ACCESS_LOG", "FILE",
                      "a line per request into FILE (- : standard error)", "none", NULL},
    [S_ACCESS_LOG_FORMAT] = {"access-log-format", "ACCESS_LOG_FORMAT", "combined|json",
                             "the access log's format", "combined", NULL},
    [S_REQUEST_ID_HEADER] = {"request-id-header", "REQUEST_ID_HEADER", "0|1",
                             "1: send each request's id back as X-Request-Id", "0", NULL},
    [S_RESPONSE_TIMEOUT_MS] = {"response-timeout-ms", "RESPONSE_TIMEOUT_MS", "N",
                               "a request unanswered this long is a fault (0: off)", "", NULL},
    [S_CALLBACK_LIMIT_MS] = {"callback-limit-ms", "CALLBACK_LIMIT_MS", "N",
                             "a callback busy this long (CPU) is interrupted (0: off)",
                             "1000, or BW_CALLBACK_LIMIT_MS", NULL},
    [S_KEEP_ON_ERRORS] = {"keep-on-errors", "KEEP_ON_ERRORS", "0|1",
                          "1: a throw costs its request only, not its worker", "0", NULL},
    [S_ERROR_DELAY_MS] = {"error-delay-ms", "ERROR_DELAY_MS", "N", "the /error route's timer",
                          "10", NULL},
    [S_FAIL_AT_START] = {"fail-at-start", "FAIL_AT_START", "0|1",
                         "1: every worker faults before it listens", "0", NULL},
    [S_FAIL_AT_START_IF] = {"fail-at-start-if", "FAIL_AT_START_IF", "FILE",
                            "workers started while FILE exists fault before they listen",
                            "none", NULL},
    [S_MAX_REQUESTS] = {"max-requests", "MAX_REQUESTS", "N",
                        "recycle a worker after this many requests (0: never)", "", NULL},
    [S_MAX_REQUESTS_JITTER] = {"max-requests-jitter", "MAX_REQUESTS_JITTER", "N",
                               "...plus a random 0..N, drawn per worker", "", NULL},
    [S_MAX_MEMORY_MB] = {"max-memory-mb", "MAX_MEMORY_MB", "N",
                         "recycle a worker whose resident memory exceeds N MiB (0: never)", "",
                         NULL},
    [S_RUN_AS_USER] = {"user", "RUN_AS_USER", "NAME",
                       "the workers' user, a name or a uid (the primary keeps its own)", "none",
                       NULL},
    [S_RUN_AS_GROUP] = {"group", "RUN_AS_GROUP", "NAME",
                        "the workers' group, a name or a gid", "the user's", NULL},
    [S_ALLOW_ROOT] = {"allow-root", "ALLOW_ROOT", "0|1",
                      "as root with no user: 1 runs root workers, 0 refuses to start",
                      "unset: a warning", NULL},
    [S_PID_FILE] = {"pid-file", "PID_FILE", "FILE", "write the primary's pid into FILE",
                    "none", NULL},
    [S_PROXY_PROTOCOL] = {"proxy-protocol", "PROXY_PROTOCOL", "0|1",
                          "1: connections begin with a PROXY header (v1 or v2)", "0", NULL},
};

/* The flag's value, else the environment's, else NULL. */
static const char *setting_value(int id)
{
    return settings[id].value != NULL ? settings[id].value : getenv(settings[id].env);
}

/* A number setting; unset or empty: def. (The environment is read as
 * strtoull reads it; flags are checked when parsed.) */
static uint64_t setting_u64(int id, uint64_t def)
{
    const char *v = setting_value(id);
    return v != NULL && *v != '\0' ? strtoull(v, NULL, 10) : def;
}

static bool is_number(const char *v)
{
    if (*v < '0' || *v > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == '\0' && errno == 0 && n <= INT32_MAX;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bulwark-server [OPTION]...\n"
            "The seed's crash-safe HTTP server on bulwark: a primary forks workers that\n"
            "share one listening socket; a request that faults costs one 500.\n"
            "\n"
            "Each option overrides the environment variable named after it; defaults in\n"
            "brackets.\n"
            "\n");
    for (int i = 0; i < S_COUNT; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s=%s", settings[i].flag, settings[i].arg);
        fprintf(out, "  %-27s %s\n  %-27s [%s; environment %s]\n", left, settings[i].help, "",
                settings[i].def, settings[i].env);
    }
    fprintf(out,
            "  -h, --help                  show this help and exit\n"
            "  --version                   show the version and exit\n"
            "\n"
            "The library reads its own environment variables besides (no flags):\n"
            "BW_EVENT_LOG (a file: the primary's events as JSON lines), BW_LOG_LEVEL,\n"
            "BW_CALLBACK_LIMIT_MS (the callback limit when --callback-limit-ms is not\n"
            "given; default 1000), BW_ABORT_ON_UNCAUGHT, and LISTEN_FDS/LISTEN_PID\n"
            "(a socket passed by systemd).\n"
            "\n"
            "SIGTERM or SIGINT drains and exits 0; SIGHUP restarts the workers one by\n"
            "one. Routes: / answers \"ok\"; /error, /segv, /abort, /hang... fault on\n"
            "purpose (the list is at the top of examples/seed_server.c).\n");
}

/* Reads the command line into settings[].value. Returns -1 to go on, or
 * the exit status (0 after --help or --version, 2 after a bad option). */
static int parse_args(int argc, char **argv)
{
    enum { OPT_HELP = 'h', OPT_VERSION = 1000, OPT_SETTING = 2000 };
    struct option longopts[S_COUNT + 3];
    for (int i = 0; i < S_COUNT; i++)
        longopts[i] = (struct option){settings[i].flag, required_argument, NULL, OPT_SETTING + i};
    longopts[S_COUNT] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[S_COUNT + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[S_COUNT + 2] = (struct option){NULL, 0, NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (c == OPT_VERSION) {
            printf("bulwark-server %s\n", bw_version());
            return 0;
        }
        if (c < OPT_SETTING || c >= OPT_SETTING + S_COUNT) {
            usage(stderr); /* getopt_long said what was wrong */
            return 2;
        }
        setting *s = &settings[c - OPT_SETTING];
        if (strcmp(s->arg, "N") == 0 && !is_number(optarg)) {
            fprintf(stderr, "bulwark-server: --%s wants a number, not \"%s\"\n", s->flag, optarg);
            return 2;
        }
        if (strcmp(s->arg, "0|1") == 0 && strcmp(optarg, "0") != 0 && strcmp(optarg, "1") != 0) {
            fprintf(stderr, "bulwark-server: --%s wants 0 or 1, not \"%s\"\n", s->flag, optarg);
            return 2;
        }
        s->value = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "bulwark-server: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The defaults --help shows for the cluster's settings: the library's own. */
static void fill_defaults(const bw_cluster_options *o)
{
    const struct {
        int id;
        uint64_t v;
    } d[] = {
        {S_WORKERS, (uint64_t)o->workers},
        {S_KILL_TIMEOUT_MS, o->kill_timeout_ms},
        {S_SHUTDOWN_TIMEOUT_MS, o->shutdown_timeout_ms},
        {S_DRAIN_DELAY_MS, o->drain_delay_ms},
        {S_HEARTBEAT_INTERVAL_MS, o->heartbeat_interval_ms},
        {S_HEARTBEAT_TIMEOUT_MS, o->heartbeat_timeout_ms},
        {S_POISON_THRESHOLD, (uint64_t)o->poison_threshold},
        {S_POISON_WINDOW_MS, o->poison_window_ms},
        {S_QUARANTINE_MS, o->quarantine_ms},
        {S_CLIENT_FAULT_BUDGET, (uint64_t)o->client_fault_budget},
        {S_CLIENT_FAULT_WINDOW_MS, o->client_fault_window_ms},
        {S_CLIENT_BLOCK_MS, o->client_block_ms},
        {S_CLIENT_BLOCK_DELAY_MS, o->client_block_delay_ms},
        {S_RESTART_INTENSITY, (uint64_t)o->restart_intensity},
        {S_RESTART_PERIOD_MS, o->restart_period_ms},
        {S_MAX_FORKS_PER_SECOND, (uint64_t)o->max_forks_per_second},
        {S_HANDOFF_TIMEOUT_MS, o->handoff_timeout_ms},
        {S_UPGRADE_TIMEOUT_MS, o->upgrade_timeout_ms},
        {S_MAX_REQUESTS, o->max_requests},
        {S_MAX_REQUESTS_JITTER, o->max_requests_jitter},
        {S_MAX_MEMORY_MB, o->max_memory_mb},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        snprintf(settings[d[i].id].def, sizeof settings[d[i].id].def, "%" PRIu64, d[i].v);
    bw_http_options h;
    bw_http_options_init(&h);
    snprintf(settings[S_RESPONSE_TIMEOUT_MS].def, sizeof settings[S_RESPONSE_TIMEOUT_MS].def,
             "%" PRIu64, h.response_timeout_ms);
}

static long query_ms(bw_http_request *req)
{
    const char *q = strstr(bw_http_request_query(req), "ms=");
    return q != NULL ? atol(q + 3) : 100;
}

/* ---- The faults -------------------------------------------------------- */

typedef struct flerb {
    void (*bark)(struct flerb *self);
} flerb;

static flerb *volatile undefined_flerb = NULL;
static volatile int *volatile nowhere = NULL;
static volatile int zero = 0;
static volatile int hundred = 100; /* gcc turns 1/x into a compare: divide for real */

static void bark_later(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    /* Whoops! */
    undefined_flerb->bark(undefined_flerb);
}

/* Unbounded in practice (the limit is out of reach); the bound only tells
 * the compiler this is not an infinite loop it may reason about. */
static volatile int recursion_limit = 1 << 30;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth == recursion_limit)
        return 0;
    return recurse(depth + 1) + frame[0];
}

static void on_opened(void *ctx, void *result)
{
    (void)result;
    bw_http_response_end(ctx, "opened?!\n", 9); /* not reached: the file is missing */
}

/* A cleanup of the request's domain that faults: it runs after the
 * response, when the domain is disposed (a test route, like /hang). */
static void faulting_cleanup(void *arg)
{
    (void)arg;
    *nowhere = 2;
}

/* /hog?mb=N: allocates N MiB (default 1), touches every page and keeps
 * it for the worker's life: resident memory that grows, for MAX_MEMORY_MB. */
static void hog(bw_http_request *req, bw_http_response *res)
{
    typedef struct chunk {
        struct chunk *next;
    } chunk;
    static chunk *kept;
    const char *q = strstr(bw_http_request_query(req), "mb=");
    long mb = q != NULL ? atol(q + 3) : 1;
    if (mb < 0 || mb > 4096)
        mb = 1;
    for (long i = 0; i < mb; i++) {
        chunk *c = malloc(1 << 20);
        if (c == NULL)
            break;
        memset(c, 0x5a, 1 << 20);
        c->next = kept;
        kept = c;
    }
    char body[32];
    int n = snprintf(body, sizeof body, "kept %ld MiB\n", mb);
    bw_http_response_send(res, 200, "text/plain", body, (size_t)n);
}

/* ---- The handler ------------------------------------------------------- */

static void answer_slow(bw_timer *t, void *data)
{
    (void)t;
    bw_http_response_send(data, 200, "text/plain", "slow ok\n", 8);
}

static void handle_request(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *path = bw_http_request_path(req);
    bw_loop *loop = bw_http_request_loop(req);
    if (strcmp(path, "/error") == 0) {
        /* We do some async stuff, and then... */
        bw_timeout(loop, error_delay_ms, bark_later, NULL, NULL);
    } else if (strcmp(path, "/throw") == 0) {
        bw_throwf(-EINVAL, "thrown by the /throw handler");
    } else if (strcmp(path, "/segv") == 0 || strncmp(path, "/segv/", 6) == 0) {
        *nowhere = 1;
    } else if (strcmp(path, "/abort") == 0) {
        abort();
    } else if (strcmp(path, "/assert") == 0) {
        assert(zero == 1 && "the /assert route asserts something false");
    } else if (strcmp(path, "/fpe") == 0) {
        bw_http_response_end(res, NULL, (size_t)(hundred / zero));
    } else if (strcmp(path, "/stack-overflow") == 0) {
        bw_http_response_end(res, NULL, (size_t)recurse(0));
    } else if (strcmp(path, "/emit-error") == 0) {
        bw_emitter *e; /* bound to the request's domain */
        if (bw_emitter_new(&e) != 0)
            bw_throwf(-ENOMEM, "no memory for the emitter");
        bw_emitter_emit_error(e, bw_error_new(-EIO, "an emitter failed, and nobody listened"));
        bw_emitter_free(e);
    } else if (strcmp(path, "/callback-error") == 0) {
        bw_bound *cb;
        int rc = bw_domain_intercept(bw_http_request_domain(req), on_opened, res, &cb);
        if (rc != 0)
            bw_throwf(rc, "bw_domain_intercept: %s", bw_strerror(rc));
        bw_fs_open(loop, "/nonexistent/bulwark/callback-error", 0, 0, bw_bound_callback,
                   bw_bound_once(cb));
    } else if (strcmp(path, "/hang") == 0) {
        for (volatile unsigned long i = 0;; i++) {
        }
    } else if (strcmp(path, "/cleanup-segv") == 0) {
        bw_domain_defer(bw_http_request_domain(req), faulting_cleanup, NULL);
        bw_http_response_send(res, 200, "text/plain", "ok", 2);
    } else if (strcmp(path, "/pid") == 0) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        bw_http_response_send(res, 200, "text/plain", pid, (size_t)n);
    } else if (strcmp(path, "/peer") == 0) {
        const char *peer = bw_http_request_peer(req);
        peer = peer != NULL ? peer : "?";
        bw_http_response_send(res, 200, "text/plain", peer, strlen(peer));
    } else if (strcmp(path, "/slow") == 0) {
        bw_timeout(loop, (uint64_t)query_ms(req), answer_slow, res, NULL);
    } else if (strcmp(path, "/hog") == 0) {
        hog(req, res);
    } else if (strcmp(path, "/parse") == 0) {
        if (strstr(bw_http_request_query(req), "bad") != NULL)
            *nowhere = 3;
        bw_http_response_send(res, 200, "text/plain", "parsed\n", 7);
    } else {
        bw_http_response_end(res, "ok", 2);
    }
}

/* ---- Worker and primary ------------------------------------------------ */

static int worker_main(bw_worker_ctx *ctx, void *data)
{
    (void)data;
    const char *fail_if = setting_value(S_FAIL_AT_START_IF);
    if (setting_u64(S_FAIL_AT_START, 0) != 0 || (fail_if != NULL && access(fail_if, F_OK) == 0))
        *nowhere = 1; /* dies of SIGSEGV before listening */
    bw_loop *loop = bw_worker_ctx_loop(ctx);
    bw_http_options opts;
    bw_http_options_init(&opts);
    opts.response_timeout_ms = setting_u64(S_RESPONSE_TIMEOUT_MS, opts.response_timeout_ms);
    opts.request_id_header = setting_u64(S_REQUEST_ID_HEADER, 0) != 0;
    opts.proxy_protocol = setting_u64(S_PROXY_PROTOCOL, 0) != 0;
    bw_http_server *server;
    /* KEEP_ON_ERRORS=1: a throw or an error event costs its request only
     * (cluster.h, bw_crash_policy.keep_on_errors); faults still retire. */
    bw_crash_policy policy = {.keep_on_errors = setting_u64(S_KEEP_ON_ERRORS, 0) != 0};
    int rc = bw_http_server_new(loop, &opts, handle_request, NULL, &server);
    /* Each worker appends to the access log itself (O_APPEND, whole lines),
     * buffered: no system call per request. */
    bw_access_log *access = NULL;
    const char *access_path = setting_value(S_ACCESS_LOG);
    if (rc == 0 && access_path != NULL && *access_path != '\0') {
        const char *format = setting_value(S_ACCESS_LOG_FORMAT);
        rc = bw_access_log_new(loop, access_path,
                               format != NULL && strcmp(format, "json") == 0 ? BW_ACCESS_LOG_JSON
                                                                             : BW_ACCESS_LOG_COMBINED,
                               &access);
        if (rc == 0)
            bw_http_server_on_finished(server, bw_access_log_finished, access);
    }
    if (rc == 0)
        rc = bw_worker_ctx_serve_http(ctx, server, &policy);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "worker %d: cannot serve: %s", bw_worker_ctx_id(ctx),
               bw_strerror(rc));
        return 1;
    }
    bw_loop_run(loop, UV_RUN_DEFAULT);
    if (access != NULL) { /* the last lines, the faulted request's included */
        bw_http_server_on_finished(server, NULL, NULL);
        bw_access_log_free(access);
        bw_loop_run(loop, UV_RUN_DEFAULT); /* its timer's close */
    }
    bw_http_server_free(server);
    return bw_loop_free(loop) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    bw_cluster_options o;
    bw_cluster_options_init(&o);
    fill_defaults(&o);
    int status = parse_args(argc, argv);
    if (status >= 0)
        return status;
    o.workers = (int)setting_u64(S_WORKERS, (uint64_t)o.workers);
    o.kill_timeout_ms = setting_u64(S_KILL_TIMEOUT_MS, o.kill_timeout_ms);
    o.heartbeat_timeout_ms = setting_u64(S_HEARTBEAT_TIMEOUT_MS, o.heartbeat_timeout_ms);
    o.heartbeat_interval_ms = setting_u64(S_HEARTBEAT_INTERVAL_MS, o.heartbeat_interval_ms);
    o.shutdown_timeout_ms = setting_u64(S_SHUTDOWN_TIMEOUT_MS, o.shutdown_timeout_ms);
    o.drain_delay_ms = setting_u64(S_DRAIN_DELAY_MS, o.drain_delay_ms);
    o.poison_threshold = (int)setting_u64(S_POISON_THRESHOLD, (uint64_t)o.poison_threshold);
    o.poison_window_ms = setting_u64(S_POISON_WINDOW_MS, o.poison_window_ms);
    o.quarantine_ms = setting_u64(S_QUARANTINE_MS, o.quarantine_ms);
    o.client_fault_budget =
        (int)setting_u64(S_CLIENT_FAULT_BUDGET, (uint64_t)o.client_fault_budget);
    o.client_fault_window_ms = setting_u64(S_CLIENT_FAULT_WINDOW_MS, o.client_fault_window_ms);
    o.client_block_ms = setting_u64(S_CLIENT_BLOCK_MS, o.client_block_ms);
    o.client_block_delay_ms = setting_u64(S_CLIENT_BLOCK_DELAY_MS, o.client_block_delay_ms);
    o.restart_intensity = (int)setting_u64(S_RESTART_INTENSITY, (uint64_t)o.restart_intensity);
    o.restart_period_ms = setting_u64(S_RESTART_PERIOD_MS, o.restart_period_ms);
    o.max_forks_per_second =
        (int)setting_u64(S_MAX_FORKS_PER_SECOND, (uint64_t)o.max_forks_per_second);
    o.handoff = setting_u64(S_HANDOFF, 1) != 0;
    o.handoff_timeout_ms = setting_u64(S_HANDOFF_TIMEOUT_MS, o.handoff_timeout_ms);
    o.upgrade_timeout_ms = setting_u64(S_UPGRADE_TIMEOUT_MS, o.upgrade_timeout_ms);
    const char *admin_port = setting_value(S_ADMIN_PORT);
    if (admin_port != NULL)
        o.admin_port = atoi(admin_port); /* -1: any free port */
    if (setting_value(S_ADMIN_HOST) != NULL)
        o.admin_host = setting_value(S_ADMIN_HOST);
    o.max_requests = setting_u64(S_MAX_REQUESTS, o.max_requests);
    o.max_requests_jitter = setting_u64(S_MAX_REQUESTS_JITTER, o.max_requests_jitter);
    o.max_memory_mb = setting_u64(S_MAX_MEMORY_MB, o.max_memory_mb);
    o.user = setting_value(S_RUN_AS_USER);
    o.group = setting_value(S_RUN_AS_GROUP);
    const char *allow_root = setting_value(S_ALLOW_ROOT);
    if (allow_root != NULL && *allow_root != '\0')
        o.allow_root = strcmp(allow_root, "0") == 0 ? BW_NO : BW_YES;
    o.pid_file = setting_value(S_PID_FILE);
    error_delay_ms = setting_u64(S_ERROR_DELAY_MS, error_delay_ms);
    /* Process-wide, inherited by the workers. */
    if (setting_value(S_CALLBACK_LIMIT_MS) != NULL)
        bw_guard_set_callback_limit(setting_u64(S_CALLBACK_LIMIT_MS, 0));
    if (geteuid() == 0 && (o.user == NULL || *o.user == '\0') && o.allow_root == BW_NO) {
        fprintf(stderr, "bulwark-server: refusing to run the workers as root: give them a user "
                        "(--user=NAME, RUN_AS_USER), or allow it (--allow-root=1, "
                        "ALLOW_ROOT=1)\n");
        return 1;
    }
    const char *host = setting_value(S_HOST);
    return bw_cluster_run(&o, host != NULL ? host : "127.0.0.1",
                          (int)setting_u64(S_PORT, 1337), worker_main, NULL);
}
