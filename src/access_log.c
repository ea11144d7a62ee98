/*
 * access_log.c: a line per finished request, buffered (access_log.h).
 */
#include "bulwark/access_log.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BW__ACCESS_BUF (64 * 1024)
#define BW__ACCESS_LINE 8192
#define BW__ACCESS_FLUSH_MS 1000

struct bw_access_log {
    bw_access_log_format format;
    int fd;
    bool own_fd;
    bool failing;       /* the last write failed (logged once) */
    long pid;           /* getpid() is a system call each time: asked once */
    uv_timer_t *timer;  /* its own block: freed by its close callback */
    char *path;         /* the file's (NULL: standard error), to follow a rotation */
    size_t len;
    time_t cached_sec;  /* the combined format's time, per second */
    char cached_time[32];
    char buf[BW__ACCESS_BUF];
};

static void on_flush_timer(uv_timer_t *t)
{
    bw_access_log *log = t->data;
    if (log != NULL && log->len > 0)
        bw_access_log_flush(log);
}

int bw_access_log_new(bw_loop *loop, const char *path, bw_access_log_format format,
                      bw_access_log **out)
{
    *out = NULL;
    if (loop == NULL || path == NULL || *path == '\0' ||
        (format != BW_ACCESS_LOG_COMBINED && format != BW_ACCESS_LOG_JSON))
        return -EINVAL;
    bw_access_log *log = bw_calloc(1, sizeof *log);
    uv_timer_t *timer = bw_calloc(1, sizeof *timer);
    if (log == NULL || timer == NULL) {
        bw_free(log);
        bw_free(timer);
        return -ENOMEM;
    }
    log->format = format;
    log->pid = (long)getpid(); /* a log is made in the process that writes it */
    if (strcmp(path, "-") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        log->path = log->fd >= 0 ? bw_malloc(strlen(path) + 1) : NULL;
        if (log->fd < 0 || log->path == NULL) {
            int rc = log->fd < 0 ? -errno : -ENOMEM;
            if (log->fd >= 0)
                close(log->fd);
            bw_free(log);
            bw_free(timer);
            return rc;
        }
        strcpy(log->path, path);
        log->own_fd = true;
    }
    uv_timer_init(bw_loop_uv(loop), timer);
    timer->data = log;
    uv_timer_start(timer, on_flush_timer, BW__ACCESS_FLUSH_MS, BW__ACCESS_FLUSH_MS);
    uv_unref((uv_handle_t *)timer);
    log->timer = timer;
    *out = log;
    return 0;
}

/* logrotate moved the file (or removed it): write on into a new one at
 * the path, as nginx does after its SIGUSR1, without needing the signal.
 * One stat a flush, at most once a second. */
static void follow_rotation(bw_access_log *log)
{
    struct stat at_path, ours;
    if (log->path == NULL || fstat(log->fd, &ours) != 0)
        return;
    if (stat(log->path, &at_path) == 0 && at_path.st_ino == ours.st_ino &&
        at_path.st_dev == ours.st_dev)
        return;
    int fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* the old file it is, until the path can be opened */
    close(log->fd);
    log->fd = fd;
}

int bw_access_log_flush(bw_access_log *log)
{
    follow_rotation(log);
    size_t off = 0;
    int rc = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)n;
    }
    if (rc != 0 && !log->failing)
        bw_log(BW_LOG_ERROR, "access log: cannot write %zu bytes: %s (lines dropped)",
               log->len - off, bw_strerror(rc));
    log->failing = rc != 0;
    log->len = 0;
    return rc;
}

static void on_timer_closed(uv_handle_t *h)
{
    bw_free(h);
}

void bw_access_log_free(bw_access_log *log)
{
    if (log == NULL)
        return;
    if (log->len > 0)
        bw_access_log_flush(log);
    if (log->own_fd)
        close(log->fd);
    bw_free(log->path);
    log->timer->data = NULL;
    uv_close((uv_handle_t *)log->timer, on_timer_closed);
    bw_free(log);
}

/* ---- Formats ----------------------------------------------------------- */

static const char *const outcome_names[] = {"answered", "faulted", "reset", "aborted",
                                            "quarantined"};

typedef struct line {
    char *p;
    size_t len, cap;
} line;

static void put_raw(line *l, const char *s, size_t n)
{
    if (l->len + n >= l->cap) {
        n = l->len < l->cap - 1 ? l->cap - 1 - l->len : 0; /* cut: the line ends anyway */
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void put_str(line *l, const char *s)
{
    put_raw(l, s, strlen(s));
}

static void put_u64(line *l, uint64_t v)
{
    char digits[24];
    size_t n = sizeof digits;
    do
        digits[--n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put_raw(l, digits + n, sizeof digits - n);
}

/* nginx's escaping inside a quoted field: " \ and bytes outside 0x20-0x7e
 * as \xHH; runs of plain bytes are copied whole. */
static void put_escaped(line *l, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        const unsigned char *run = p;
        while (*p != '\0' && *p != '"' && *p != '\\' && *p >= 0x20 && *p <= 0x7e)
            p++;
        put_raw(l, (const char *)run, (size_t)(p - run));
        if (*p != '\0') {
            char esc[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            put_raw(l, esc, 4);
            p++;
        }
    }
}

static void put_quoted(line *l, const char *s)
{
    put_raw(l, "\"", 1);
    if (s == NULL || *s == '\0')
        put_raw(l, "-", 1);
    else
        put_escaped(l, s);
    put_raw(l, "\"", 1);
}

/* The peer's address without its port ("127.0.0.1:5" -> "127.0.0.1"). */
static void put_host(line *l, const char *peer)
{
    const char *colon = strrchr(peer, ':');
    put_raw(l, peer, colon != NULL ? (size_t)(colon - peer) : strlen(peer));
}

static const char *combined_time(bw_access_log *log)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != log->cached_sec) {
        static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(log->cached_time, sizeof log->cached_time, "%02d/%s/%04d:%02d:%02d:%02d +0000",
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        log->cached_sec = ts.tv_sec;
    }
    return log->cached_time;
}

static void combined(bw_access_log *log, line *l, bw_http_request *req, const bw_http_finished *f,
                     const char *id)
{
    put_host(l, bw_http_request_peer(req));
    put_str(l, " - - [");
    put_str(l, combined_time(log));
    put_str(l, "] \""); /* the request line, escaped like the other two */
    put_escaped(l, f->method);
    put_raw(l, " ", 1);
    put_escaped(l, f->target);
    put_str(l, bw_http_request_version_minor(req) == 0 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
    put_u64(l, (uint64_t)f->status);
    put_raw(l, " ", 1);
    if (f->body_bytes > 0)
        put_u64(l, f->body_bytes);
    else
        put_raw(l, "-", 1);
    put_raw(l, " ", 1);
    put_quoted(l, bw_http_request_header(req, "referer"));
    put_raw(l, " ", 1);
    put_quoted(l, bw_http_request_header(req, "user-agent"));
    put_str(l, " rt=");
    put_u64(l, f->duration_ms / 1000);
    char ms[4] = {'.', (char)('0' + f->duration_ms / 100 % 10), (char)('0' + f->duration_ms / 10 % 10),
                  (char)('0' + f->duration_ms % 10)};
    put_raw(l, ms, 4);
    put_str(l, " pid=");
    put_u64(l, (uint64_t)log->pid);
    put_str(l, " route=");
    put_str(l, f->route != NULL ? f->route : "-");
    put_str(l, " id=");
    put_str(l, id);
    put_str(l, " outcome=");
    put_str(l, outcome_names[f->outcome]);
}

static void json(const bw_access_log *log, line *l, bw_http_request *req,
                 const bw_http_finished *f, const char *id)
{
    char time[BW__LOG_TIME_LEN + 1];
    bw__log_time(time);
    bw__jw w = {.buf = l->p, .size = l->cap, .limit = l->cap - 8, .str_max = 2048};
    bw__jw_raw(&w, "{");
    bw__jw_kstr(&w, "time", time);
    bw__jw_kstr(&w, "peer", bw_http_request_peer(req));
    bw__jw_kstr(&w, "method", f->method);
    bw__jw_kstr(&w, "target", f->target);
    bw__jw_kstr(&w, "version", bw_http_request_version_minor(req) == 0 ? "1.0" : "1.1");
    bw__jw_kint(&w, "status", f->status);
    bw__jw_kint(&w, "bytes", (long long)f->body_bytes);
    bw__jw_kint(&w, "duration_ms", (long long)f->duration_ms);
    bw__jw_kint(&w, "pid", log->pid);
    bw__jw_kstr(&w, "route", f->route);
    bw__jw_kstr(&w, "request_id", id);
    bw__jw_kstr(&w, "outcome", outcome_names[f->outcome]);
    bw__jw_kstr(&w, "referer", bw_http_request_header(req, "referer"));
    bw__jw_kstr(&w, "user_agent", bw_http_request_header(req, "user-agent"));
    bw__jw_close(&w, "}");
    l->len = w.len;
}

void bw_access_log_finished(bw_http_request *req, const bw_http_finished *f, void *data)
{
    bw_access_log *log = data;
    char text[BW__ACCESS_LINE];
    line l = {text, 0, sizeof text};
    const char *id = bw_http_request_id(req);
    if (log->format == BW_ACCESS_LOG_JSON)
        json(log, &l, req, f, id);
    else
        combined(log, &l, req, f, id);
    text[l.len++] = '\n';
    if (log->len + l.len > sizeof log->buf)
        bw_access_log_flush(log);
    memcpy(log->buf + log->len, text, l.len);
    log->len += l.len;
}
