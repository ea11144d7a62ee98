/*
 * resource.h: anything of the user's own, bound to a domain.
 *
 * A resource is how a raw libuv handle, a file descriptor or any other
 * object of the user's joins a domain: it records an owner (the active
 * domain at creation, or one given with bw_domain_add), its callbacks can
 * be run inside that owner under a guard (bw_resource_invoke), and when the
 * owner is disposed the resource's close function is called, so a failed
 * request leaks nothing it opened (the C shape of an async resource, D-24).
 */
#ifndef BULWARK_RESOURCE_H
#define BULWARK_RESOURCE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called once, to close what the resource stands for (e.g. uv_close). */
typedef void (*bw_resource_close_fn)(void *ptr);

/*
 * A resource standing for `ptr`, in *out, bound to the active domain (if
 * any). `close` (may be NULL) is called at most once: by the owner's
 * dispose, or by bw_resource_dispose. The record is the caller's until
 * bw_resource_free, whichever of those happened. 0 or -ENOMEM (*out NULL).
 */
BW_EXTERN int bw_resource_new(void *ptr, bw_resource_close_fn close, bw_resource **out);

/* Dispose of it now, as its owner's dispose would: call the close function
 * (if not called yet) and unbind. The record stays until bw_resource_free. */
BW_EXTERN void bw_resource_dispose(bw_resource *r);

/* Unbind and free the record; does not call the close function. NULL is a
 * no-op. */
BW_EXTERN void bw_resource_free(bw_resource *r);

/* True once the close function has been called. */
BW_EXTERN bool bw_resource_is_disposed(const bw_resource *r);

/* The object the resource stands for. */
BW_EXTERN void *bw_resource_ptr(const bw_resource *r);

/* Run fn(arg) inside the resource's domain, as bw_invoke does. Nothing runs
 * if the resource is closed or its domain disposed. */
BW_EXTERN void bw_resource_invoke(bw_resource *r, bw_task_fn fn, void *arg);

/* The resource as a domain member (for bw_domain_add), and its owner. */
BW_EXTERN bw_member *bw_resource_member(bw_resource *r);
BW_EXTERN bw_domain *bw_resource_domain(const bw_resource *r);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_RESOURCE_H */
