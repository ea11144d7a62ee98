/*
 * fs.c: a few libuv fs requests bound to domains, and a read stream.
 *
 * Each request records the active domain when it starts and completes
 * inside it, under a guard. Failures become bw_error values built with
 * bw_error_from_status, so code, syscall and path survive (D-43).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "internal.h"

enum fs_kind { FS_STAT, FS_OPEN, FS_CLOSE, FS_SCANDIR, FS_EXISTS };

typedef struct fs_req {
    uv_fs_t req;
    bw_domain *d; /* held */
    enum fs_kind kind;
    bw_callback cb;
    void *data;
    bw_error *err;
    bw_fs_result result;
    char *path;
} fs_req;

static const char *syscall_name(enum fs_kind kind)
{
    switch (kind) {
    case FS_STAT:
    case FS_EXISTS:
        return "stat";
    case FS_OPEN:
        return "open";
    case FS_CLOSE:
        return "close";
    case FS_SCANDIR:
        return "scandir";
    }
    return "?";
}

static char *copy_path(const char *path)
{
    if (path == NULL)
        return NULL;
    size_t n = strlen(path) + 1;
    char *p = bw_malloc(n);
    if (p != NULL)
        memcpy(p, path, n);
    return p;
}

static fs_req *req_new(enum fs_kind kind, const char *path, bw_callback cb, void *data)
{
    fs_req *r = bw_calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->path = copy_path(path);
    if (path != NULL && r->path == NULL) {
        bw_free(r);
        return NULL;
    }
    bw_domain *d = bw_domain_active();
    r->d = d != NULL ? bw_domain_hold(d) : NULL;
    r->kind = kind;
    r->cb = cb;
    r->data = data;
    r->req.data = r;
    r->result.path = r->path;
    return r;
}

static void req_free(fs_req *r)
{
    uv_fs_req_cleanup(&r->req);
    if (r->err != NULL)
        bw_error_release(r->err);
    if (r->d != NULL)
        bw_domain_release(r->d);
    bw_free(r->path);
    bw_free(r);
}

static void deliver(void *arg)
{
    fs_req *r = arg;
    r->cb(r->err, &r->result, r->data);
}

static void on_done(uv_fs_t *req)
{
    fs_req *r = req->data;
    ssize_t res = req->result;
    if (r->kind == FS_EXISTS) {
        r->result.value = res >= 0;
    } else if (res < 0) {
        r->err = bw_error_from_status((int)res, syscall_name(r->kind), r->path);
    } else {
        r->result.value = res;
        if (r->kind == FS_STAT)
            r->result.stat = &req->statbuf;
    }
    bw_invoke(r->d, deliver, r);
    req_free(r);
}

static int start_failed(fs_req *r, int rc)
{
    r->req.result = 0; /* nothing for uv_fs_req_cleanup to look at */
    req_free(r);
    return rc;
}

int bw_fs_stat(bw_loop *loop, const char *path, bw_callback cb, void *data)
{
    fs_req *r = req_new(FS_STAT, path, cb, data);
    if (r == NULL)
        return -ENOMEM;
    int rc = uv_fs_stat(loop->uv, &r->req, r->path, on_done);
    return rc < 0 ? start_failed(r, rc) : 0;
}

int bw_fs_exists(bw_loop *loop, const char *path, bw_callback cb, void *data)
{
    fs_req *r = req_new(FS_EXISTS, path, cb, data);
    if (r == NULL)
        return -ENOMEM;
    int rc = uv_fs_stat(loop->uv, &r->req, r->path, on_done);
    return rc < 0 ? start_failed(r, rc) : 0;
}

int bw_fs_open(bw_loop *loop, const char *path, int flags, int mode, bw_callback cb, void *data)
{
    fs_req *r = req_new(FS_OPEN, path, cb, data);
    if (r == NULL)
        return -ENOMEM;
    int rc = uv_fs_open(loop->uv, &r->req, r->path, flags | O_CLOEXEC, mode, on_done);
    return rc < 0 ? start_failed(r, rc) : 0;
}

int bw_fs_close(bw_loop *loop, int fd, bw_callback cb, void *data)
{
    fs_req *r = req_new(FS_CLOSE, NULL, cb, data);
    if (r == NULL)
        return -ENOMEM;
    int rc = uv_fs_close(loop->uv, &r->req, fd, on_done);
    return rc < 0 ? start_failed(r, rc) : 0;
}

int bw_fs_scandir(bw_loop *loop, const char *path, bw_callback cb, void *data)
{
    fs_req *r = req_new(FS_SCANDIR, path, cb, data);
    if (r == NULL)
        return -ENOMEM;
    int rc = uv_fs_scandir(loop->uv, &r->req, r->path, 0, on_done);
    return rc < 0 ? start_failed(r, rc) : 0;
}

/* ---- Read stream ------------------------------------------------------- */

#define BW__STREAM_CHUNK (64 * 1024)

typedef struct read_stream {
    uv_fs_t req;
    bw_loop *loop;
    bw_emitter *e;
    char *path;
    uv_file fd;
    char *buf;
    int64_t offset;
} read_stream;

typedef struct stream_emit {
    read_stream *s;
    const char *event;
    void *arg;
} stream_emit;

static void emit_task(void *arg)
{
    stream_emit *m = arg;
    bw_emitter_emit(m->s->e, m->event, m->arg);
}

/* Emit inside the emitter's domain, under its own guard: a throw from a
 * listener aborts that emit only; the stream still advances and closes. */
static void stream_emit_event(read_stream *s, const char *event, void *arg)
{
    stream_emit m = {s, event, arg};
    bw_domain *d = bw_emitter_domain(s->e);
    if (d != NULL && d->disposed)
        d = NULL; /* listeners are gone and errors swallowed: still emit */
    bw_invoke(d, emit_task, &m);
}

static void stream_free(read_stream *s)
{
    bw_emitter_free(s->e);
    bw_free(s->buf);
    bw_free(s->path);
    bw_free(s);
}

static void stream_on_close(uv_fs_t *req)
{
    read_stream *s = req->data;
    uv_fs_req_cleanup(req);
    stream_emit_event(s, "close", NULL);
    stream_free(s);
}

static void stream_close(read_stream *s)
{
    if (s->fd >= 0 && uv_fs_close(s->loop->uv, &s->req, s->fd, stream_on_close) == 0)
        return;
    stream_emit_event(s, "close", NULL);
    stream_free(s);
}

static void stream_fail(read_stream *s, int status, const char *syscall)
{
    bw_error *err = bw_error_from_status(status, syscall, s->path);
    if (!err->pinned)
        bw_error_set_origin(err, BW_ORIGIN_EMITTER);
    stream_emit_event(s, BW_EVENT_ERROR, err);
    bw_error_release(err);
    stream_close(s);
}

static void stream_on_read(uv_fs_t *req);

static void stream_read_next(read_stream *s)
{
    uv_buf_t b = uv_buf_init(s->buf, BW__STREAM_CHUNK);
    int rc = uv_fs_read(s->loop->uv, &s->req, s->fd, &b, 1, s->offset, stream_on_read);
    if (rc < 0)
        stream_fail(s, rc, "read");
}

static void stream_on_read(uv_fs_t *req)
{
    read_stream *s = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n < 0) {
        stream_fail(s, (int)n, "read");
        return;
    }
    if (n == 0) {
        stream_emit_event(s, "end", NULL);
        stream_close(s);
        return;
    }
    s->offset += n;
    bw_fs_chunk chunk = {s->buf, (size_t)n};
    stream_emit_event(s, "data", &chunk);
    stream_read_next(s);
}

static void stream_on_open(uv_fs_t *req)
{
    read_stream *s = req->data;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        stream_fail(s, (int)fd, "open");
        return;
    }
    s->fd = (uv_file)fd;
    int64_t value = fd;
    stream_emit_event(s, "open", &value);
    stream_read_next(s);
}

int bw_fs_read_stream(bw_loop *loop, const char *path, bw_emitter **out)
{
    *out = NULL;
    read_stream *s = bw_calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->fd = -1;
    s->path = copy_path(path);
    s->buf = bw_malloc(BW__STREAM_CHUNK);
    int rc = bw_emitter_new(&s->e);
    if (rc == 0 && (s->path == NULL || s->buf == NULL))
        rc = -ENOMEM;
    s->req.data = s;
    if (rc == 0)
        rc = uv_fs_open(loop->uv, &s->req, s->path, O_RDONLY | O_CLOEXEC, 0, stream_on_open);
    if (rc < 0) {
        stream_free(s);
        return rc;
    }
    *out = s->e;
    return 0;
}
