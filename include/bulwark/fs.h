/*
 * fs.h: asynchronous file-system requests bound to domains.
 *
 * A small set of libuv fs requests, each bound to the domain active when it
 * starts and completing inside it under a guard (D-17, D-18), with failures
 * delivered as bw_error values that keep the system code, the syscall and
 * the path (D-43). They exist so that domain semantics can be shown and
 * tested on real I/O; they are not a complete file-system API.
 *
 * Every completion has the bw_callback shape (err, result, data): `err` is
 * NULL on success and borrowed otherwise; `result` points to a
 * bw_fs_result valid during the call. A request that fails to start returns
 * its error and never calls back.
 */
#ifndef BULWARK_FS_H
#define BULWARK_FS_H

#include "common.h" /* first: the feature macros uv.h needs */
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bw_fs_result {
    int64_t value;         /* open: the fd; scandir: entries; read: bytes; exists: 0/1 */
    const uv_stat_t *stat; /* stat: the result; NULL otherwise */
    const char *path;      /* the path the request was made with */
} bw_fs_result;

/* uv_fs_stat, uv_fs_open, uv_fs_close and uv_fs_scandir as bound requests:
 * 0, or the libuv error of starting them (-ENOMEM included). */
BW_EXTERN int bw_fs_stat(bw_loop *loop, const char *path, bw_callback cb, void *data);
BW_EXTERN int bw_fs_open(bw_loop *loop, const char *path, int flags, int mode, bw_callback cb,
                         void *data);
BW_EXTERN int bw_fs_close(bw_loop *loop, int fd, bw_callback cb, void *data);
BW_EXTERN int bw_fs_scandir(bw_loop *loop, const char *path, bw_callback cb, void *data);
/* Never fails: err is always NULL, value says whether the path exists. */
BW_EXTERN int bw_fs_exists(bw_loop *loop, const char *path, bw_callback cb, void *data);

/* A chunk of a read stream's `data` event. */
typedef struct bw_fs_chunk {
    const char *base;
    size_t len;
} bw_fs_chunk;

/*
 * A read stream (Node's fs.createReadStream): an emitter, bound to the
 * active domain, that opens `path` and emits "data" (bw_fs_chunk *), then
 * "end" (NULL) and "close" (NULL); on failure "error" (bw_error *) and
 * "close". After "close" the stream frees itself and its emitter: do not
 * use the pointer afterwards. The emitter goes to *out. 0, -ENOMEM, or the
 * libuv error of starting the open (*out is then NULL, no event is
 * emitted); an open that fails later is an "error" event.
 */
BW_EXTERN int bw_fs_read_stream(bw_loop *loop, const char *path, bw_emitter **out);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_FS_H */
