/*
 * log.c: the logging hook. The default writes each message to stderr with
 * a single write(2), formatted on the stack: no stdio, no heap, so it still
 * works on the fatal path after a fault.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

#define BW__LOG_MAX 4096

static void default_log(bw_log_level level, const char *msg, void *data);

static bw_log_fn log_fn = default_log;
static void *log_data = NULL;
static int log_level = -1; /* -1: not read from the environment yet */

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

static void default_log(bw_log_level level, const char *msg, void *data)
{
    (void)data;
    char line[BW__LOG_MAX + 64];
    int n = snprintf(line, sizeof line, "bulwark[%ld] %s: %s\n", (long)getpid(),
                     bw_log_level_name(level), msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (len > 0 && line[len - 1] != '\n')
        line[len - 1] = '\n';
    const char *p = line;
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
