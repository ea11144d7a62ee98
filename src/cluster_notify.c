/*
 * cluster_notify.c: what the primary tells its service manager
 * (sd_notify.h for the protocol).
 *
 *   READY=1       once as many workers listen as it keeps (start-up), and
 *                 again when a reload is over;
 *   RELOADING=1   with MONOTONIC_USEC= when a rolling restart begins;
 *   STOPPING=1    when the shutdown begins (a signal, a give-up, the API);
 *   STATUS=       the worker counts, whenever they change;
 *   WATCHDOG=1    every half WATCHDOG_USEC while supervision is healthy.
 *
 * Healthy means: the primary's loop turns (the ping is a timer on it), it
 * has not given up forking, and no worker is wedged: none silent for twice
 * the heartbeat timeout without being dealt with, none still alive well
 * after a SIGKILL (stuck in the kernel). A wedged primary stops pinging and
 * systemd restarts the service; a healthy one under a crash storm does not
 * get restarted for the storm.
 *
 * The primary's own process only: a worker's environment loses the
 * variables at fork (cluster_worker.c), so that nothing a worker runs can
 * speak for the service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster_internal.h"

void bw__cluster_notify_init(bw_cluster *c)
{
    c->notify.fd = -1;
    if (!c->opts.notify)
        return;
    int rc = bw__notify_open(&c->notify, getenv("NOTIFY_SOCKET"), getenv("WATCHDOG_USEC"),
                             getenv("WATCHDOG_PID"), getpid());
    if (rc != 0)
        bw_log(BW_LOG_WARN, "cluster: NOTIFY_SOCKET=%s unusable (%s): the service manager "
               "will not hear from this primary", getenv("NOTIFY_SOCKET"), bw_strerror(rc));
}

static void send_text(bw_cluster *c, const char *text)
{
    int rc = bw__notify_send(&c->notify, text);
    if (rc != 0 && rc != c->notify.last_error)
        bw_log(BW_LOG_WARN, "cluster: cannot notify the service manager: %s", bw_strerror(rc));
    c->notify.last_error = rc;
}

bw__worker_census bw__cluster_census(const bw_cluster *c)
{
    bw__worker_census n = {0, 0, 0};
    for (const bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->gone || w->exited)
            continue;
        if (w->retiring || w->disconnect_sent || w->hang_reported)
            n.draining++;
        else if (w->state == BW_WORKER_LISTENING)
            n.serving++;
        else
            n.starting++;
    }
    return n;
}

void bw__cluster_notify_update(bw_cluster *c)
{
    bw__worker_census n = bw__cluster_census(c);
    bool first_ready = !c->notify_ready && !c->shutting_down && n.serving >= c->opts.workers;
    if (first_ready)
        bw__upgrade_ready(c); /* a successor tells its predecessor */
    if (c->notify.fd < 0) {
        c->notify_ready |= first_ready;
        return;
    }
    char status[160];
    const char *phase = c->gave_up         ? "gave up (workers die before listening), stopping"
                        : c->shutting_down ? "stopping"
                        : c->rolling       ? "reloading"
                        : c->notify_ready  ? "serving"
                                           : "starting";
    snprintf(status, sizeof status,
             "STATUS=%s: %d workers serving (%d wanted), %d starting, %d draining", phase,
             n.serving, c->opts.workers, n.starting, n.draining);
    char text[256];
    if (c->shutting_down) {
        if (c->notify_stopping && strcmp(status, c->notify_status) == 0)
            return;
        snprintf(text, sizeof text, "%s%s", c->notify_stopping ? "" : "STOPPING=1\n", status);
        c->notify_stopping = true;
    } else if (c->rolling && !c->notify_reloading) {
        snprintf(text, sizeof text, "RELOADING=1\nMONOTONIC_USEC=%llu\n%s",
                 (unsigned long long)bw__notify_monotonic_usec(), status);
        c->notify_reloading = true;
    } else if (!c->rolling && c->notify_reloading) {
        /* The reload is over, done or abandoned (the old workers serve). */
        snprintf(text, sizeof text, "READY=1\n%s", status);
        c->notify_reloading = false;
    } else if (first_ready) {
        c->notify_ready = true;
        snprintf(status, sizeof status,
                 "STATUS=serving: %d workers serving (%d wanted), %d starting, %d draining",
                 n.serving, c->opts.workers, n.starting, n.draining);
        /* A successor's READY=1 is its predecessor's to send, with
         * MAINPID=: systemd listens to the main process only. */
        snprintf(text, sizeof text, "%s%s", c->upgrade.successor ? "" : "READY=1\n", status);
    } else if (strcmp(status, c->notify_status) != 0) {
        snprintf(text, sizeof text, "%s", status);
    } else {
        return;
    }
    snprintf(c->notify_status, sizeof c->notify_status, "%s", status);
    send_text(c, text);
}

void bw__cluster_notify_stopping(bw_cluster *c)
{
    if (c->notify.fd < 0 || c->notify_stopping)
        return;
    c->notify_stopping = true;
    send_text(c, "STOPPING=1\nSTATUS=stopping: out of rotation, draining soon");
}

void bw__cluster_notify_hand_over(bw_cluster *c, pid_t successor)
{
    if (c->notify.fd < 0)
        return;
    char text[128];
    snprintf(text, sizeof text, "MAINPID=%ld\nREADY=1\nSTATUS=upgraded: primary %ld serves",
             (long)successor, (long)successor);
    send_text(c, text);
    /* The service is the successor's now: this primary's draining and exit
     * must not read as the service stopping. */
    bw__notify_close(&c->notify);
}

static bool supervision_healthy(const bw_cluster *c)
{
    if (c->gave_up)
        return false;
    uint64_t now = uv_now(c->loop->uv);
    uint64_t limit = c->opts.heartbeat_timeout_ms;
    for (const bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->exited)
            continue;
        if (w->sigkill_ms != 0 && now - w->sigkill_ms > limit)
            return false; /* killed, and not dead: stuck in the kernel */
        bool watched = w->connected && !w->retiring && !w->disconnect_sent;
        if (watched && now - w->last_heartbeat_ms > 2 * limit)
            return false; /* silent, and nobody dealt with it */
    }
    return true;
}

static void on_watchdog(uv_timer_t *t)
{
    bw_cluster *c = t->data;
    if (supervision_healthy(c))
        send_text(c, "WATCHDOG=1");
}

bool bw__cluster_notify_start(bw_cluster *c)
{
    if (c->notify.fd < 0 || c->notify.watchdog_usec == 0 || c->watchdog_open)
        return false;
    uint64_t every = c->notify.watchdog_usec / 2000;
    if (every == 0)
        every = 1;
    uv_timer_init(c->loop->uv, &c->watchdog);
    c->watchdog.data = c;
    /* Not ref'd: the watchdog must not keep a finished primary alive. */
    uv_timer_start(&c->watchdog, on_watchdog, every, every);
    uv_unref((uv_handle_t *)&c->watchdog);
    c->watchdog_open = true;
    send_text(c, "WATCHDOG=1");
    return true;
}
