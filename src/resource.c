/*
 * resource.c: the user's own objects as domain members.
 */
#include "internal.h"

struct bw_resource {
    bw_member member;
    void *ptr;
    bw_resource_close_fn close;
    bool closed;
};

static void resource_member_dispose(bw_member *m);
static const bw__member_ops resource_member_ops = {"resource", resource_member_dispose, true};

int bw_resource_new(void *ptr, bw_resource_close_fn close, bw_resource **out)
{
    bw_resource *r = bw_calloc(1, sizeof *r);
    *out = r;
    if (r == NULL)
        return -ENOMEM;
    bw__member_init(&r->member, &resource_member_ops);
    r->ptr = ptr;
    r->close = close;
    bw__member_bind_active(&r->member);
    return 0;
}

static void call_close(bw_resource *r)
{
    if (r->closed)
        return;
    r->closed = true;
    if (r->close != NULL)
        r->close(r->ptr);
}

static void resource_member_dispose(bw_member *m)
{
    call_close(BW__CONTAINER_OF(m, bw_resource, member));
}

void bw_resource_dispose(bw_resource *r)
{
    bw__member_unbind(&r->member);
    call_close(r);
}

void bw_resource_free(bw_resource *r)
{
    if (r == NULL)
        return;
    bw__member_unbind(&r->member);
    bw_free(r);
}

bool bw_resource_is_disposed(const bw_resource *r)
{
    return r->closed;
}

void *bw_resource_ptr(const bw_resource *r)
{
    return r->ptr;
}

void bw_resource_invoke(bw_resource *r, bw_task_fn fn, void *arg)
{
    if (r->closed)
        return;
    bw_invoke(r->member.owner, fn, arg);
}

bw_member *bw_resource_member(bw_resource *r)
{
    return &r->member;
}

bw_domain *bw_resource_domain(const bw_resource *r)
{
    return r->member.owner;
}
