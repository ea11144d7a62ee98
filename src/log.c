/*
 * log.c: the logging hook. The default writes each message to stderr with
 * a single write(2), formatted on the stack: no stdio, no heap, no lock
 * (the timestamp is computed here, not by gmtime_r, which takes glibc's
 * time zone lock), so it still works on the fatal path after a fault.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BW__LOG_MAX 4096
/* A JSON line: a crash report's 48 frames take 5 to 12 KiB. */
#define BW__LOG_JSON_MAX 16384
/* In an error report, the most a string takes (escaped). */
#define BW__LOG_JSON_STR_MAX 2048
/* Kept free below a JSON buffer's end for the closing brackets. */
#define BW__JW_RESERVE 32

static void default_log(bw_log_level level, const char *msg, void *data);

static bw_log_fn log_fn = default_log;
static void *log_data = NULL;
static int log_level = -1;  /* -1: not read from the environment yet */
static int log_format = -1; /* the same */
static int log_worker = -1;

const char *bw_log_level_name(bw_log_level level)
{
    switch (level) {
    case BW_LOG_DEBUG:
        return "DEBUG";
    case BW_LOG_INFO:
        return "INFO";
    case BW_LOG_WARN:
        return "WARN";
    case BW_LOG_ERROR:
        return "ERROR";
    case BW_LOG_FATAL:
        return "FATAL";
    }
    return "?";
}

/* ---- Time ---------------------------------------------------------------- */

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm). */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

size_t bw__log_time(char *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long secs = (long long)ts.tv_sec;
    long long days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    unsigned sod = (unsigned)(secs - days * 86400);
    long long y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    if (y < 0 || y > 9999)
        y = 0; /* not representable in RFC 3339 */
    char *p = out;
    put2(p, (unsigned)(y / 100));
    put2(p + 2, (unsigned)(y % 100));
    p[4] = '-';
    put2(p + 5, m);
    p[7] = '-';
    put2(p + 8, d);
    p[10] = 'T';
    put2(p + 11, sod / 3600);
    p[13] = ':';
    put2(p + 14, sod / 60 % 60);
    p[16] = ':';
    put2(p + 17, sod % 60);
    p[19] = '.';
    p[20] = (char)('0' + ms / 100);
    put2(p + 21, ms % 100);
    p[23] = 'Z';
    p[24] = '\0';
    return BW__LOG_TIME_LEN;
}

/* ---- The JSON writer ------------------------------------------------------ */

static bool room(const bw__jw *w, size_t n)
{
    return w->len + n <= w->limit;
}

void bw__jw_raw(bw__jw *w, const char *s)
{
    size_t n = strlen(s);
    if (!room(w, n)) {
        w->over = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void bw__jw_close(bw__jw *w, const char *s)
{
    size_t n = strlen(s);
    if (w->len + n > w->size)
        return; /* cannot happen with BW__JW_RESERVE: at most a few brackets */
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

bool bw__jw_key(bw__jw *w, const char *key)
{
    char tmp[80];
    size_t n = 0;
    char last = w->len > 0 ? w->buf[w->len - 1] : '{';
    if (last != '{' && last != '[')
        tmp[n++] = ',';
    tmp[n++] = '"';
    size_t k = strlen(key);
    if (k > sizeof tmp - 5)
        k = sizeof tmp - 5;
    memcpy(tmp + n, key, k);
    n += k;
    tmp[n++] = '"';
    tmp[n++] = ':';
    tmp[n] = '\0';
    bw__jw_raw(w, tmp);
    if (w->over) {
        w->over = false;
        w->cut = true; /* a member left out */
        return false;
    }
    return true;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4
                                                                                          : 0;
    }
    return 0;
}

void bw__jw_str(bw__jw *w, const char *s)
{
    if (s == NULL) {
        bw__jw_raw(w, "null");
        return;
    }
    if (!room(w, 2)) {
        w->over = true;
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t lim = w->limit;
    if (w->str_max != 0 && w->len + w->str_max < lim)
        lim = w->len + w->str_max;
    w->buf[w->len++] = '"';
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        char esc[8];
        const char *out = esc;
        size_t n = 2, adv = 1;
        unsigned c = *p;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            } else if (c < 0x80) {
                out = (const char *)p;
                n = 1;
            } else if ((adv = utf8_len(p)) > 0) {
                out = (const char *)p;
                n = adv;
            } else {
                out = "\\ufffd"; /* not UTF-8: JSON text must be */
                n = 6;
                adv = 1;
            }
        }
        if (w->len + n + 1 > lim) { /* + the closing quote */
            w->cut = true;
            break;
        }
        memcpy(w->buf + w->len, out, n);
        w->len += n;
        p += adv;
    }
    w->buf[w->len++] = '"';
}

void bw__jw_int(bw__jw *w, long long v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    *--p = '\0';
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    bw__jw_raw(w, p);
}

void bw__jw_hex(bw__jw *w, uintptr_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    *--p = '\0';
    *--p = '"';
    do
        *--p = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    *--p = 'x';
    *--p = '0';
    *--p = '"';
    bw__jw_raw(w, p);
}

/* A key and its value, or neither. */
#define FIELD(w, key, put)                                                                        \
    do {                                                                                          \
        size_t mark_ = (w)->len;                                                                  \
        if (bw__jw_key((w), (key))) {                                                             \
            put;                                                                                  \
            if ((w)->over) {                                                                      \
                (w)->len = mark_;                                                                 \
                (w)->over = false;                                                                \
                (w)->cut = true;                                                                  \
            }                                                                                     \
        }                                                                                         \
    } while (0)

void bw__jw_kstr(bw__jw *w, const char *key, const char *s)
{
    FIELD(w, key, bw__jw_str(w, s));
}

void bw__jw_kint(bw__jw *w, const char *key, long long v)
{
    FIELD(w, key, bw__jw_int(w, v));
}

void bw__jw_khex(bw__jw *w, const char *key, uintptr_t v)
{
    FIELD(w, key, bw__jw_hex(w, v));
}

void bw__jw_kbool(bw__jw *w, const char *key, bool v)
{
    FIELD(w, key, bw__jw_raw(w, v ? "true" : "false"));
}

bool bw__jw_open(bw__jw *w, const char *key, const char *bracket)
{
    bool opened = false;
    FIELD(w, key, (bw__jw_raw(w, bracket), opened = !w->over));
    return opened;
}

/* ---- The default hook ----------------------------------------------------- */

static void write_all(const char *p, size_t len)
{
    int saved = errno;
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    errno = saved;
}

/* Text as whole lines: a pipe (a terminal, `| tee`, a test's reader, the
 * stderr every worker shares with its primary) keeps a write whole only up
 * to PIPE_BUF bytes. A longer one (a crash report with its backtrace) is
 * written in pieces of whole lines, each at most PIPE_BUF, so another
 * process's line can come between two of its lines but never inside one. */
static void write_lines(const char *p, size_t len)
{
    while (len > PIPE_BUF) {
        size_t cut = 0;
        for (size_t i = 0; i < PIPE_BUF; i++)
            if (p[i] == '\n')
                cut = i + 1;
        if (cut == 0)
            cut = PIPE_BUF; /* a single line longer than that: no better cut */
        write_all(p, cut);
        p += cut;
        len -= cut;
    }
    write_all(p, len);
}

/* {"time":...,"level":...,"pid":...[,"worker":...],"msg":... (left open) */
static void json_head(bw__jw *w, bw_log_level level, const char *msg)
{
    char now[BW__LOG_TIME_LEN + 1];
    bw__log_time(now);
    bw__jw_raw(w, "{");
    bw__jw_kstr(w, "time", now);
    bw__jw_kstr(w, "level", bw_log_level_name(level));
    bw__jw_kint(w, "pid", (long long)getpid());
    if (log_worker >= 0)
        bw__jw_kint(w, "worker", log_worker);
    bw__jw_kstr(w, "msg", msg);
}

static void json_end(bw__jw *w)
{
    bw__jw_close(w, "}\n");
    write_all(w->buf, w->len);
}

static void default_log(bw_log_level level, const char *msg, void *data)
{
    (void)data;
    if (bw_log_get_format() == BW_LOG_FORMAT_JSON) {
        char line[BW__LOG_JSON_MAX];
        bw__jw w = {.buf = line, .size = sizeof line, .limit = sizeof line - BW__JW_RESERVE};
        json_head(&w, level, msg);
        json_end(&w);
        return;
    }
    char now[BW__LOG_TIME_LEN + 1];
    bw__log_time(now);
    char line[BW__LOG_MAX + 96];
    int n = snprintf(line, sizeof line, "%s bulwark[%ld] %s: %s\n", now, (long)getpid(),
                     bw_log_level_name(level), msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (len > 0 && line[len - 1] != '\n')
        line[len - 1] = '\n';
    write_lines(line, len);
}

void bw_log_set_handler(bw_log_fn fn, void *data)
{
    log_fn = fn != NULL ? fn : default_log;
    log_data = fn != NULL ? data : NULL;
}

static int level_from_env(void)
{
    const char *v = getenv("BW_LOG_LEVEL");
    if (v == NULL)
        return BW_LOG_INFO;
    if (strcasecmp(v, "debug") == 0)
        return BW_LOG_DEBUG;
    if (strcasecmp(v, "warn") == 0)
        return BW_LOG_WARN;
    if (strcasecmp(v, "error") == 0)
        return BW_LOG_ERROR;
    return BW_LOG_INFO;
}

void bw_log_set_level(bw_log_level level)
{
    log_level = (int)level;
}

bw_log_level bw_log_get_level(void)
{
    if (log_level < 0)
        log_level = level_from_env();
    return (bw_log_level)log_level;
}

void bw_log_set_format(bw_log_format format)
{
    log_format = format == BW_LOG_FORMAT_JSON ? BW_LOG_FORMAT_JSON : BW_LOG_FORMAT_TEXT;
}

bw_log_format bw_log_get_format(void)
{
    if (log_format < 0) {
        const char *v = getenv("BW_LOG_FORMAT");
        log_format = v != NULL && strcasecmp(v, "json") == 0 ? BW_LOG_FORMAT_JSON
                                                              : BW_LOG_FORMAT_TEXT;
    }
    return (bw_log_format)log_format;
}

void bw__log_set_worker(int id)
{
    log_worker = id;
}

void bw_log(bw_log_level level, const char *fmt, ...)
{
    if ((int)level < (int)bw_log_get_level())
        return;
    char msg[BW__LOG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_data);
}

/* ---- Error reports -------------------------------------------------------- */

/* Two paths, each with its own buffers: never both on the stack at once. */
static void text_report(bw_log_level level, const bw_error *err, const char *fmt, va_list ap)
    __attribute__((noinline)) BW_PRINTF(3, 0);
static void text_report(bw_log_level level, const bw_error *err, const char *fmt, va_list ap)
{
    char msg[BW__LOG_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n >= 0 && (size_t)n + 2 < sizeof msg) {
        memcpy(msg + n, ": ", 2);
        bw_error_format(err, msg + n + 2, sizeof msg - (size_t)n - 2);
    }
    log_fn(level, msg, log_data);
}

static void json_report(bw_log_level level, const bw_error *err, const bw__log_request *req,
                        const char *fmt, va_list ap) __attribute__((noinline)) BW_PRINTF(4, 0);
static void json_report(bw_log_level level, const bw_error *err, const bw__log_request *req,
                        const char *fmt, va_list ap)
{
    char msg[BW__LOG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char line[BW__LOG_JSON_MAX];
    /* No string may take the room of the rest: a long target or message
     * must not crowd out the origin and the backtrace. */
    bw__jw w = {.buf = line,
                .size = sizeof line,
                .limit = sizeof line - BW__JW_RESERVE,
                .str_max = BW__LOG_JSON_STR_MAX};
    json_head(&w, level, msg);
    if (req != NULL && bw__jw_open(&w, "request", "{")) {
        bw__jw_kstr(&w, "method", req->method);
        bw__jw_kstr(&w, "target", req->target);
        bw__jw_kstr(&w, "route", req->route);
        bw__jw_kstr(&w, "peer", req->peer);
        if (req->id != NULL)
            bw__jw_kstr(&w, "id", req->id);
        bw__jw_close(&w, "}");
    }
    if (bw__jw_open(&w, "error", "{")) {
        bw__error_json(err, &w);
        bw__jw_close(&w, "}");
    }
    json_end(&w);
}

void bw__log_error(bw_log_level level, const bw_error *err, const bw__log_request *req,
                   const char *fmt, ...)
{
    if ((int)level < (int)bw_log_get_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    if (log_fn == default_log && bw_log_get_format() == BW_LOG_FORMAT_JSON)
        json_report(level, err, req, fmt, ap);
    else
        text_report(level, err, fmt, ap);
    va_end(ap);
}
