/*
 * test_log.c: what the default log hook writes, in both formats: the
 * RFC 3339 time, the pid and the level on every line; JSON lines that a
 * strict parser accepts, with quotes, backslashes, newlines, control
 * characters and bytes that are not UTF-8 escaped; an error report as one
 * JSON line with the error and the request as objects, valid even when it
 * would not fit; a user's hook still getting the text report; and long
 * text reports from several processes on one pipe keeping their lines whole.
 */
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bw_test.h"
#include "internal.h"

/* ---- Capturing standard error -------------------------------------------- */

typedef struct capture {
    int fd, saved;
} capture;

static capture capture_begin(void)
{
    capture c;
    c.fd = memfd_create("stderr", 0);
    BW_CHECK(c.fd >= 0);
    c.saved = dup(STDERR_FILENO);
    BW_CHECK(c.saved >= 0);
    BW_CHECK(dup2(c.fd, STDERR_FILENO) == STDERR_FILENO);
    return c;
}

/* Everything written since capture_begin, NUL-terminated (malloc'd). */
static char *capture_end(capture c)
{
    BW_CHECK(dup2(c.saved, STDERR_FILENO) == STDERR_FILENO);
    close(c.saved);
    off_t n = lseek(c.fd, 0, SEEK_END);
    BW_CHECK(n >= 0);
    char *buf = malloc((size_t)n + 1);
    BW_CHECK(buf != NULL);
    BW_CHECK(pread(c.fd, buf, (size_t)n, 0) == n);
    buf[n] = '\0';
    close(c.fd);
    return buf;
}

static size_t count_char(const char *s, char ch)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == ch;
    return n;
}

static void check_regex(const char *text, const char *pattern)
{
    regex_t re;
    BW_CHECK(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        bw_test_fail(__FILE__, __LINE__, "\"%s\" does not match /%s/", text, pattern);
}

#define TIME_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* The clock the log reads: time(2) reads a coarser one, which may still
 * say the previous second when the log's already says the next. */
static time_t realtime_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* The second of the line's timestamp is one of those the call spanned. */
static void check_time_is_now(const char *stamp, time_t before, time_t after)
{
    for (time_t t = before; t <= after; t++) {
        struct tm tm;
        char want[32];
        gmtime_r(&t, &tm);
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S.", &tm);
        if (strncmp(stamp, want, strlen(want)) == 0)
            return;
    }
    bw_test_fail(__FILE__, __LINE__, "timestamp %.24s is not the time of the call", stamp);
}

/* ---- A strict JSON validator (RFC 8259) ------------------------------------ */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return NULL; /* raw control characters (a newline among them) */
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || p[i] == '\0')
                        return NULL;
                p += 5;
                continue;
            }
            if (*p == '\0' || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    return p; /* the writer emits integers only */
}

static const char *json_seq(const char *p, char close, bool keyed, int depth)
{
    p = json_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (keyed) {
            if ((p = json_string(p)) == NULL)
                return NULL;
            p = json_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if ((p = json_value(p, depth + 1)) == NULL)
            return NULL;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
        p = json_ws(p);
    }
}

static const char *json_value(const char *p, int depth)
{
    if (depth > 16)
        return NULL;
    p = json_ws(p);
    switch (*p) {
    case '{':
        return json_seq(p, '}', true, depth);
    case '[':
        return json_seq(p, ']', false, depth);
    case '"':
        return json_string(p);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return json_number(p);
    }
}

/* `line` is exactly one JSON object and its newline. */
static void check_json_line(const char *line)
{
    BW_CHECK(line[0] == '{');
    const char *end = json_value(line, 0);
    if (end == NULL || strcmp(end, "\n") != 0)
        bw_test_fail(__FILE__, __LINE__, "not one JSON object and a newline: %s", line);
}

/* ---- The formats ------------------------------------------------------------ */

BW_TEST(X_40, text_line_has_the_time_the_pid_and_the_level)
{
    bw_log_set_format(BW_LOG_FORMAT_TEXT);
    capture c = capture_begin();
    time_t before = realtime_s();
    bw_log(BW_LOG_WARN, "hello %d", 7);
    time_t after = realtime_s();
    char *out = capture_end(c);
    char re[128];
    snprintf(re, sizeof re, "^" TIME_RE " bulwark\\[%ld\\] WARN: hello 7\n$", (long)getpid());
    check_regex(out, re);
    check_time_is_now(out, before, after);
    free(out);
}

BW_TEST(X_41, json_line_has_the_time_the_pid_the_level_and_escapes_the_message)
{
    bw_log_set_format(BW_LOG_FORMAT_JSON);
    BW_CHECK_INT_EQ(bw_log_get_format(), BW_LOG_FORMAT_JSON);
    capture c = capture_begin();
    time_t before = realtime_s();
    /* Quotes, a backslash, a newline, a tab, a control character, DEL,
     * a byte that is not UTF-8, and UTF-8 that is. */
    bw_log(BW_LOG_ERROR, "a \"q\" b\\c\nd\te\001f\177g\377h \xc3\xa9");
    time_t after = realtime_s();
    char *out = capture_end(c);
    check_json_line(out);
    BW_CHECK_INT_EQ(count_char(out, '\n'), 1);
    char re[256];
    snprintf(re, sizeof re, "^\\{\"time\":\"" TIME_RE "\",\"level\":\"ERROR\",\"pid\":%ld,\"msg\":",
             (long)getpid());
    check_regex(out, re);
    check_time_is_now(out + strlen("{\"time\":\""), before, after);
    BW_CHECK_CONTAINS(out, ",\"msg\":\"a \\\"q\\\" b\\\\c\\nd\\te\\u0001f\\u007fg\\ufffdh "
                           "\xc3\xa9\"}\n");
    free(out);
    bw_log_set_format(BW_LOG_FORMAT_TEXT);
}

/* Non-static, never inlined and not a tail call: a named frame. */
static volatile int site_calls;

__attribute__((noinline)) void log_site_throw(void *arg)
{
    site_calls++;
    bw_throwf(-EPERM, "%s", (const char *)arg);
}

static const bw__log_request a_request = {"GET", "/a?b=\"1\"", NULL, "192.0.2.1:5", "req-7"};

static char *json_report(const bw_error *err, const bw__log_request *req)
{
    bw_log_set_format(BW_LOG_FORMAT_JSON);
    capture c = capture_begin();
    bw__log_error(BW_LOG_ERROR, err, req, "crash in request %s", "here");
    char *out = capture_end(c);
    bw_log_set_format(BW_LOG_FORMAT_TEXT);
    return out;
}

BW_TEST(X_42, json_error_report_is_one_line_with_the_error_and_request_as_objects)
{
    bw_domain_release(bw_test_domain()); /* the thread's state */
    bw_error *err = bw_try(log_site_throw, "it \"broke\"\nbadly");
    BW_CHECK(err != NULL);
    char *out = json_report(err, &a_request);
    check_json_line(out);
    BW_CHECK_INT_EQ(count_char(out, '\n'), 1);
    BW_CHECK_CONTAINS(out, "\"msg\":\"crash in request here\",\"request\":{\"method\":\"GET\","
                           "\"target\":\"/a?b=\\\"1\\\"\",\"route\":null,\"peer\":\"192.0.2.1:5\","
                           "\"id\":\"req-7\"}");
    BW_CHECK_CONTAINS(out, ",\"error\":{\"message\":\"it \\\"broke\\\"\\nbadly\",\"code\":-1,"
                           "\"code_name\":\"EPERM\",\"origin\":\"thrown\",");
    BW_CHECK_CONTAINS(out, ",\"backtrace\":[{\"pc\":\"0x");
    BW_CHECK_CONTAINS(out, "\"function\":\"log_site_throw\",\"offset\":\"0x");
    BW_CHECK(strstr(out, "\"signal\"") == NULL); /* not a fault */
    BW_CHECK(strstr(out, "backtrace_truncated") == NULL);
    free(out);
    /* Not in a request: no request member. */
    out = json_report(err, NULL);
    check_json_line(out);
    BW_CHECK(strstr(out, "\"request\"") == NULL);
    free(out);
    bw_error_release(err);
}

static char *ro_page;

__attribute__((noinline)) void log_fault_site(void *arg)
{
    (void)arg;
    volatile char *volatile p = ro_page + 8;
    *p = 1;
    site_calls++;
}

BW_FAULT_TEST(X_43, json_report_of_a_fault_has_signal_code_and_address)
{
    ro_page =
        mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BW_CHECK(ro_page != MAP_FAILED);
    bw_loop *loop = bw_test_loop(); /* installs the fault handlers */
    bw_error *err = bw_try(log_fault_site, NULL);
    BW_CHECK(err != NULL);
    char *out = json_report(err, &a_request);
    check_json_line(out);
    char addr[96];
    snprintf(addr, sizeof addr,
             "\"origin\":\"fault\",\"signal\":\"SIGSEGV\",\"signo\":11,\"si_code\":\"SEGV_ACCERR\","
             "\"address\":\"%p\",\"stack_overflow\":false",
             (void *)(ro_page + 8));
    BW_CHECK_CONTAINS(out, addr);
    BW_CHECK_CONTAINS(out, "\"code_name\":\"BW_EFAULTSIG\"");
    /* The first frame is the faulting function. */
    BW_CHECK_CONTAINS(out, "\"backtrace\":[{\"pc\":\"0x");
    const char *first = strstr(out, "\"backtrace\":[");
    const char *named = strstr(first, "\"function\":\"log_fault_site\"");
    BW_CHECK(named != NULL && named < strchr(first, '}'));
    free(out);
    bw_error_release(err);
    bw_test_loop_finish(loop);
}

BW_TEST(X_44, json_report_too_long_for_a_line_is_still_one_valid_line)
{
    bw_domain_release(bw_test_domain());
    /* Escaped, this message alone is 30 KiB: more than a line holds. */
    static char big[5000];
    memset(big, '"', sizeof big - 1);
    bw_error *err = bw_try(log_site_throw, big);
    BW_CHECK(err != NULL);
    static char target[3000];
    memset(target, '\n', sizeof target - 1);
    bw__log_request req = {"GET", target, "/r/:id", "192.0.2.1:5", NULL};
    char *out = json_report(err, &req);
    check_json_line(out);
    BW_CHECK(strlen(out) <= 16384);
    /* The long strings are cut (at a whole escape: the line is valid),
     * and leave room for the rest of the report. */
    const char *target_at = strstr(out, "\"target\":\"\\n");
    const char *route_at = strstr(out, "\",\"route\":\"/r/:id\",\"peer\":\"192.0.2.1:5\"}");
    BW_CHECK(target_at != NULL && route_at != NULL);
    BW_CHECK((size_t)(route_at - target_at) < 2100);
    BW_CHECK_CONTAINS(out, "\"message\":\"\\\"\\\"");
    BW_CHECK_CONTAINS(out, "\"code_name\":\"EPERM\",\"origin\":\"thrown\"");
    BW_CHECK_CONTAINS(out, "\"function\":\"log_site_throw\"");
    free(out);
    bw_error_release(err);
}

typedef struct hooked {
    int calls;
    bw_log_level level;
    char msg[8192];
} hooked;

static void hook(bw_log_level level, const char *msg, void *data)
{
    hooked *h = data;
    h->calls++;
    h->level = level;
    snprintf(h->msg, sizeof h->msg, "%s", msg);
}

BW_TEST(X_45, a_user_hook_gets_the_text_report_whatever_the_format)
{
    bw_domain_release(bw_test_domain());
    bw_error *err = bw_try(log_site_throw, "hooked");
    BW_CHECK(err != NULL);
    hooked h = {0};
    bw_log_set_handler(hook, &h);
    bw_log_set_format(BW_LOG_FORMAT_JSON);
    capture c = capture_begin();
    bw__log_error(BW_LOG_ERROR, err, &a_request, "crash in request %s", "here");
    bw_log(BW_LOG_INFO, "plain \"%s\"", "text");
    bw__log_error(BW_LOG_DEBUG, err, NULL, "below the level"); /* dropped */
    char *out = capture_end(c);
    bw_log_set_handler(NULL, NULL);
    bw_log_set_format(BW_LOG_FORMAT_TEXT);
    BW_CHECK_STR_EQ(out, ""); /* the default hook wrote nothing */
    free(out);
    BW_CHECK_INT_EQ(h.calls, 2);
    BW_CHECK_INT_EQ(h.level, BW_LOG_INFO);
    BW_CHECK_STR_EQ(h.msg, "plain \"text\"");
    /* The report the hook got first: the message, ": ", the text report. */
    h.calls = 0;
    bw_log_set_handler(hook, &h);
    bw__log_error(BW_LOG_ERROR, err, &a_request, "crash in request %s", "here");
    bw_log_set_handler(NULL, NULL);
    char report[4096];
    bw_error_format(err, report, sizeof report);
    char want[8192];
    snprintf(want, sizeof want, "crash in request here: %s", report);
    BW_CHECK_STR_EQ(h.msg, want);
    BW_CHECK_CONTAINS(h.msg, "EPERM: hooked\n  origin: thrown\n");
    bw_error_release(err);
}

/* ---- Many processes, one pipe ---------------------------------------------- */

enum { WRITERS = 3, REPORTS = 60, REPORT_LINES = 63, REPORT_LINE = 64 };

/* One report of REPORT_LINES lines, REPORT_LINE bytes each with its
 * newline, naming its writer and number on every line: 4,072 bytes, near
 * bw_log's limit, so with the prefix it is longer than PIPE_BUF. */
static void log_big_report(int writer, int report)
{
    char msg[REPORT_LINES * REPORT_LINE + 64];
    size_t off = (size_t)snprintf(msg, sizeof msg, "report %d.%02d (a crash report's first line)",
                                    writer, report);
    for (int k = 0; k < REPORT_LINES; k++) {
        char line[REPORT_LINE + 1];
        int n = snprintf(line, sizeof line, "\n  %d.%d.%02d ", writer, report, k);
        memset(line + n, 'x', (size_t)(REPORT_LINE - n));
        memcpy(msg + off, line, REPORT_LINE);
        off += REPORT_LINE;
    }
    msg[off] = '\0';
    /* The prefix ("<time> bulwark[<pid>] ERROR: ") is 46 bytes or more. */
    BW_CHECK(off + 46 > PIPE_BUF && off < 4095);
    bw_log(BW_LOG_ERROR, "%s", msg);
}

/* Every line read is whole: a prefixed first line ("... ERROR: report W.R")
 * or a continuation line of exactly its length and form. */
static void check_whole_lines(char *text)
{
    regex_t first, rest;
    BW_CHECK(regcomp(&first,
                     "^" TIME_RE " bulwark\\[[0-9]+\\] ERROR: report [0-9]\\.[0-9]+"
                     " \\(a crash report's first line\\)$",
                     REG_EXTENDED | REG_NOSUB) == 0);
    BW_CHECK(regcomp(&rest, "^  [0-9]\\.[0-9]+\\.[0-9][0-9] x+$", REG_EXTENDED | REG_NOSUB) == 0);
    int firsts = 0, rests = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (regexec(&first, line, 0, NULL, 0) == 0) {
            firsts++;
        } else if (regexec(&rest, line, 0, NULL, 0) == 0 && strlen(line) == REPORT_LINE - 1) {
            rests++;
        } else {
            bw_test_fail(__FILE__, __LINE__, "a line cut by another process's: \"%.200s\"", line);
        }
    }
    regfree(&first);
    regfree(&rest);
    BW_CHECK_INT_EQ(firsts, WRITERS * REPORTS);
    BW_CHECK_INT_EQ(rests, WRITERS * REPORTS * REPORT_LINES);
}

/* Workers share their primary's stderr, often a pipe: a write to a pipe is
 * whole only up to PIPE_BUF bytes, and a crash report with its backtrace is
 * longer. Three processes log such reports at once into one pipe read
 * slowly (so it fills, and writes are split): another process's output
 * may come between two lines of a report, never inside a line. */
BW_TEST(X_46, long_text_reports_from_many_processes_keep_their_lines_whole)
{
    bw_log_set_format(BW_LOG_FORMAT_TEXT);
    int p[2];
    BW_CHECK(pipe(p) == 0);
    pid_t kids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        kids[w] = fork();
        BW_CHECK(kids[w] >= 0);
        if (kids[w] == 0) {
            close(p[0]);
            dup2(p[1], STDERR_FILENO);
            for (int r = 0; r < REPORTS; r++)
                log_big_report(w, r);
            _exit(0);
        }
    }
    close(p[1]);
    size_t cap = (size_t)WRITERS * REPORTS * (REPORT_LINES * REPORT_LINE + 128) + 1, len = 0;
    char *text = malloc(cap);
    BW_CHECK(text != NULL);
    for (;;) {
        ssize_t n = read(p[0], text + len, len + 512 < cap ? 512 : cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    text[len] = '\0';
    close(p[0]);
    for (int w = 0; w < WRITERS; w++) {
        int status;
        BW_CHECK(waitpid(kids[w], &status, 0) == kids[w]);
        BW_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    check_whole_lines(text);
    free(text);
}
